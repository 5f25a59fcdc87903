"""Run the same counting queries on PostgreSQL and Apache Spark SQL as on DuckDB.

Every counting query in `connectors/` is written once, in DuckDB's dialect, against a relation
named `src`, with values as `$name` parameters. For another engine SQLGlot parses it, rewrites
the few constructs that engine lacks (GROUP BY ALL, approx_count_distinct, isnan, list_filter
lambdas, quantile lists), adds `src` as the first common table expression over the user's table
or SELECT, and prints it in that engine's dialect with that driver's parameter markers. Only the
grouped counts come back.
"""

from __future__ import annotations

import re
from decimal import Decimal
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import sqlglot
from sqlglot import exp

from fairwatch.metrics.errors import SourceError, SpecError
from fairwatch.metrics.privacy.redaction import redact_secrets

CONNECT_TIMEOUT_S = 10
STATEMENT_TIMEOUT_MS = 10 * 60 * 1000


def _group_by_all_to_ordinals(tree: exp.Expression) -> exp.Expression:
    """Rewrite GROUP BY ALL (a DuckDB extension) as GROUP BY 1, 2, … over the non-aggregate columns."""
    for select in tree.find_all(exp.Select):
        group = select.args.get("group")
        if group is None or not group.args.get("all"):
            continue
        ordinals = [exp.Literal.number(i + 1) for i, e in enumerate(select.expressions)
                    if not e.find(exp.AggFunc)]
        select.set("group", exp.Group(expressions=ordinals) if ordinals else None)
    return tree


def _alias_subqueries(tree: exp.Expression) -> exp.Expression:
    """PostgreSQL needs an alias on every subquery in FROM; DuckDB does not."""
    for i, sub in enumerate(tree.find_all(exp.Subquery)):
        if isinstance(sub.parent, (exp.From, exp.Join)) and not sub.alias:
            sub.set("alias", exp.TableAlias(this=exp.to_identifier(f"_fw_q{i}")))
    return tree


def _drops_nulls(node: exp.ArrayFilter) -> bool:
    """True for DuckDB's list_filter(list, lambda x: x IS NOT NULL)."""
    body, params = node.expression, node.expression.expressions if isinstance(node.expression, exp.Lambda) else []
    if len(params) != 1 or not isinstance(body.this, exp.Not) or not isinstance(body.this.this, exp.Is):
        return False
    test = body.this.this
    return isinstance(test.expression, exp.Null) and test.this.name == params[0].name


def _postgres_rewrites(node: exp.Expression) -> exp.Expression:
    """PostgreSQL lacks approx_count_distinct, isnan, count_if and lambdas: use exact equivalents."""
    if isinstance(node, exp.ApproxDistinct):
        return exp.Count(this=exp.Distinct(expressions=[node.this]))
    if isinstance(node, exp.IsNan):
        return exp.EQ(this=node.this, expression=exp.cast(exp.Literal.string("NaN"), "DOUBLE"))
    if isinstance(node, exp.CountIf):
        # SQLGlot's SUM(CASE ...) is NULL over no rows, where count_if is 0.
        return exp.Filter(this=exp.Count(this=exp.Star()), expression=exp.Where(this=node.this))
    if isinstance(node, exp.ArrayFilter) and _drops_nulls(node):
        # SQLGlot's generic form is a correlated ARRAY(SELECT ... FROM UNNEST(...)) per row.
        return exp.Anonymous(this="array_remove", expressions=[node.this, exp.Null()])
    return node


def _spark_rewrites(node: exp.Expression) -> exp.Expression:
    """Spark's isnan is never NULL, and its percentile_disc takes one fraction: rewrite both.

    SQLGlot would print DuckDB's quantile_disc(x, [q, ...]) as percentile_disc(x, ARRAY(q, ...)),
    which Spark refuses, and WITHIN GROUP over its own PercentileDisc as percentile_approx (not
    exact): build one plain percentile_disc(q) WITHIN GROUP call per fraction, as an array.
    """
    if isinstance(node, exp.IsNan):
        # Spark's isnan(NULL) is false where DuckDB's and PostgreSQL's is NULL: `NOT isnan(x)` would
        # count a missing x as a number.
        return exp.If(this=exp.Is(this=node.this.copy(), expression=exp.Null()), true=exp.Null(),
                      false=exp.Anonymous(this="isnan", expressions=[node.this.copy()]))
    if isinstance(node, exp.PercentileDisc) and node.expression is not None:
        fractions = node.expression.expressions if isinstance(node.expression, exp.Array) else [node.expression]
        order = exp.Order(expressions=[exp.Ordered(this=node.this.copy(), nulls_first=False)])
        calls = [exp.WithinGroup(this=exp.Anonymous(this="percentile_disc", expressions=[q.copy()]),
                                 expression=order.copy()) for q in fractions]
        return exp.Array(expressions=calls) if isinstance(node.expression, exp.Array) else calls[0]
    return node


def _rewrite_bottom_up(tree: exp.Expression, rewrite) -> exp.Expression:
    """Apply a node rewrite to every node, children first (SQLGlot's transform skips a new node's children)."""
    for node in reversed(list(tree.walk())):  # reversed pre-order: every node after its descendants
        new = rewrite(node)
        if new is not node:
            if node is tree:
                return new
            node.replace(new)
    return tree


def transpile(sql: str, dialect: str, base: str) -> str:
    """A DuckDB query over `src` as `dialect` SQL, with `src` defined as the given base relation."""
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError as exc:  # our own SQL: a bug, but say it in one line
        raise SourceError(f"internal query could not be translated for {dialect}: {str(exc).splitlines()[0]}") from None
    tree = _group_by_all_to_ordinals(tree)
    if dialect == "postgres":
        tree = _alias_subqueries(_rewrite_bottom_up(tree, _postgres_rewrites))
    elif dialect == "spark":
        tree = _rewrite_bottom_up(tree, _spark_rewrites)
    base_tree = sqlglot.parse_one(base, read=dialect)
    cte = exp.CTE(this=base_tree, alias=exp.TableAlias(this=exp.to_identifier("src")))
    key = "with_" if "with_" in tree.arg_types else "with"  # SQLGlot renamed the arg in v26
    with_ = tree.args.get(key)
    if with_ is None:
        tree.set(key, exp.With(expressions=[cte]))
    else:
        with_.set("expressions", [cte, *with_.expressions])
    return tree.sql(dialect=dialect)


def postgres_base(table: str | None, query: str | None) -> str:
    """The relation a PostgreSQL source reads: a (schema-qualified) table, or the user's checked SELECT."""
    if query:
        return check_select_only(query, "postgres")
    if not table:
        raise SpecError("a PostgreSQL source needs [source] table (or query): name the table of predictions")
    parts = table.split(".")
    if len(parts) > 3 or not all(parts):
        raise SpecError(f"bad table name {table!r}: use table or schema.table")
    return "SELECT * FROM " + ".".join('"' + p.replace('"', '""') + '"' for p in parts)


def check_select_only(query: str, dialect: str) -> str:
    """Accept a user's source query only when it is one read-only SELECT."""
    try:
        statements = [s for s in sqlglot.parse(query, read=dialect) if s is not None]
    except sqlglot.errors.ParseError as exc:
        raise SpecError(f"the source query is not valid SQL: {str(exc).splitlines()[0]}") from None
    if len(statements) != 1:
        raise SpecError("the source query must be a single SELECT statement")
    stmt = statements[0]
    if not isinstance(stmt, (exp.Select, exp.Union, exp.Subquery)) or any(
        isinstance(n, (exp.Insert, exp.Update, exp.Delete, exp.Create, exp.Drop, exp.Alter, exp.Command, exp.Into))
        for n in stmt.walk()
    ):
        raise SpecError("the source query must be a SELECT; fairwatch never writes to a source")
    return stmt.sql(dialect=dialect)


@dataclass
class PostgresRunner:
    """Runs transpiled counting queries in read-only transactions on a PostgreSQL server."""

    url: str
    base: str
    _conn: Any = field(default=None, repr=False)

    dialect = "postgres"

    def connect(self) -> Any:
        """Open (once) a connection with a connect timeout and a per-statement time limit."""
        import psycopg

        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=False,
                                             options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS} "
                                                     "-c default_transaction_read_only=on")
            except psycopg.OperationalError as exc:
                raise SourceError(f"cannot reach PostgreSQL at {redact_secrets(self.url)}: "
                                  f"{_pg_reason(exc)}; check host, port, credentials and that the server runs") from None
        return self._conn

    def query(self, sql: str, params: dict[str, Any]) -> pd.DataFrame:
        """Run one DuckDB-dialect query over `src`, return the (small) result."""
        import psycopg

        text = transpile(sql, "postgres", self.base)
        conn = self.connect()
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute("SET TRANSACTION READ ONLY")
                cur.execute(text.replace("%", "%%").replace("%%(", "%("), params)
                cols = [d.name for d in cur.description]
                frame = pd.DataFrame(cur.fetchall(), columns=cols)
        except psycopg.Error as exc:
            raise SourceError(f"PostgreSQL could not run the query: {str(exc).strip().splitlines()[0]}") from None
        # numeric results (round() in PostgreSQL) arrive as Decimal: compare and compute as DuckDB's doubles.
        for col in frame.columns:
            if frame[col].map(lambda v: isinstance(v, Decimal)).any():
                frame[col] = frame[col].map(lambda v: float(v) if isinstance(v, Decimal) else v)
        return frame

    def columns(self) -> list[tuple[str, str]]:
        """Names and types of the source's columns, read from an empty result."""
        import psycopg

        conn = self.connect()
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute(f"SELECT * FROM ({self.base}) AS t LIMIT 0")
                return [(d.name, _pg_type(conn, d.type_code)) for d in cur.description]
        except psycopg.Error as exc:
            raise SourceError(f"cannot read the PostgreSQL source: {str(exc).strip().splitlines()[0]}") from None

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()


def _pg_reason(exc: Exception) -> str:
    """The useful part of a connection error, without the URL (which may hold a password)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"postgres(ql)?://\S+", "(url)", text)


def _pg_type(conn: Any, oid: int) -> str:
    """A DuckDB-style type name for a PostgreSQL type OID (enough to tell numbers from text)."""
    info = conn.adapters.types.get(oid)
    name = (info.name if info else "text").lower()
    if name in ("int2", "int4", "int8", "smallint", "integer", "bigint"):
        return "BIGINT"
    if name in ("float4", "float8", "numeric", "real", "double precision"):
        return "DOUBLE"
    if name in ("bool", "boolean"):
        return "BOOLEAN"
    if name.startswith("timestamp") or name == "date":
        return "TIMESTAMP"
    return "VARCHAR"


@dataclass
class SparkRunner:
    """Runs transpiled counting queries in a SparkSession over a temp view of the source."""

    master: str
    location: str
    _spark: Any = field(default=None, repr=False)

    dialect = "spark"

    def session(self) -> Any:
        """The SparkSession (local or cluster), with the source registered as the view src_base."""
        if self._spark is None:
            try:
                from pyspark.sql import SparkSession
            except ImportError:
                raise SourceError("Spark sources need the spark extra: pip install 'fairwatch[spark]'") from None
            self._spark = (SparkSession.builder.master(self.master).appName("fairwatch")
                           .config("spark.ui.enabled", "false")
                           .config("spark.ui.showConsoleProgress", "false")
                           .config("spark.sql.session.timeZone", "UTC")
                           .config("spark.sql.shuffle.partitions", "4").getOrCreate())
            try:
                if "/" in self.location or self.location.endswith((".parquet", ".csv", ".json")):
                    reader = self._spark.read
                    frame = (reader.format("delta").load(self.location) if self.location.endswith("_delta")
                             else reader.parquet(self.location) if not self.location.endswith((".csv", ".json"))
                             else reader.option("header", "true").option("inferSchema", "true").csv(self.location)
                             if self.location.endswith(".csv") else reader.json(self.location))
                else:
                    frame = self._spark.table(self.location)
            except Exception as exc:  # noqa: BLE001 - Spark raises many kinds; all mean "cannot read"
                raise SourceError(f"Spark cannot read {self.location}: {str(exc).strip().splitlines()[0]}") from None
            frame.createOrReplaceTempView("src_base")
        return self._spark

    def query(self, sql: str, params: dict[str, Any]) -> pd.DataFrame:
        """Run one DuckDB-dialect query over `src` in Spark SQL, return the (small) result."""
        spark = self.session()
        text = transpile(sql, "spark", "SELECT * FROM src_base")
        try:
            result = spark.sql(text, args=params or None)
            # Results are small; collecting rows avoids pyspark's pandas-version checks.
            return pd.DataFrame([r.asDict() for r in result.collect()], columns=result.columns)
        except Exception as exc:  # noqa: BLE001
            raise SourceError(f"Spark could not run the query: {str(exc).strip().splitlines()[0]}") from None

    def columns(self) -> list[tuple[str, str]]:
        """Names and types of the source's columns."""
        frame = self.session().table("src_base")
        mapping = {"bigint": "BIGINT", "int": "BIGINT", "smallint": "BIGINT", "tinyint": "BIGINT", "double": "DOUBLE",
                   "float": "DOUBLE", "timestamp_ntz": "TIMESTAMP",
                   "boolean": "BOOLEAN", "timestamp": "TIMESTAMP", "date": "TIMESTAMP"}
        return [(n, mapping.get(t.split("(")[0], "DOUBLE" if t.startswith("decimal") else "VARCHAR"))
                for n, t in frame.dtypes]

    def close(self) -> None:
        """Leave the session to Spark (it is shared per process)."""
