"""Lint rules for what hosted Supabase refuses although a local superuser would not.

On hosted Supabase `postgres` is not a superuser and the supautils library guards the
platform's roles; pg-safeupdate refuses UPDATE/DELETE without WHERE in the API's sessions.
Each rule reads the SQL with Postgres's own parser (pglast, libpg_query) rather than with
patterns, so a statement is judged by what it is, wherever it sits: at the top of a migration,
in a DO block, or in a function body.

Hosted's settings are those of supabase/postgres ansible/files/postgresql_config/
supautils.conf.j2 (as of 7db7e1a, 2024-10) and migrations/db/migrations/
20260403172611_safeupdate-data-api-enable.sql (safeupdate loaded for `authenticator`'s
sessions, disabled for `postgres`'s).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from pglast.parser import ParseError, parse_plpgsql_json, parse_sql_json

from . import sqlsplit

# supautils.reserved_roles: a non-superuser may not ALTER, DROP, RENAME them, nor GRANT a role
# TO them; a trailing * lets the privileged role (postgres) change their settings and grant
# roles to them.
RESERVED_ROLES = {
    "supabase_admin": False, "supabase_auth_admin": False, "supabase_storage_admin": False,
    "supabase_read_only_user": False, "supabase_realtime_admin": False,
    "supabase_replication_admin": False, "dashboard_user": False, "pgbouncer": False,
    "service_role": True, "authenticator": True, "authenticated": True, "anon": True,
}
# supautils.reserved_memberships: nobody but a superuser may GRANT these roles.
RESERVED_MEMBERSHIPS = {
    "pg_read_server_files", "pg_write_server_files", "pg_execute_server_program",
    "supabase_admin", "supabase_auth_admin", "supabase_storage_admin", "supabase_read_only_user",
    "supabase_realtime_admin", "supabase_replication_admin", "dashboard_user", "pgbouncer",
    "authenticator",
}
# supautils.privileged_role_allowed_configs: settings `postgres` may set although Postgres
# reserves them for superusers (a trailing .* allows a whole prefix).
ALLOWED_CONFIGS = (
    "auto_explain.log_min_duration", "auto_explain.log_nested_statements", "log_lock_waits",
    "log_min_messages", "pg_net.batch_size", "pg_net.ttl", "pgaudit.log", "pgaudit.log_catalog",
    "pgaudit.log_client", "pgaudit.log_level", "pgaudit.log_relation", "pgaudit.log_rows",
    "pgaudit.log_statement", "pgaudit.log_statement_once", "pgaudit.role", "pgrst.*",
    "plan_filter.*", "safeupdate.enabled", "session_replication_role", "track_io_timing",
)
# supautils.privileged_extensions: extensions `postgres` may create (supabase_admin runs them).
PRIVILEGED_EXTENSIONS = set("""
address_standardizer address_standardizer_data_us autoinc bloom btree_gin btree_gist citext
cube dblink dict_int dict_xsyn earthdistance fuzzystrmatch hstore http hypopg index_advisor
insert_username intarray isn ltree moddatetime orioledb pg_cron pg_graphql pg_hashids
pg_jsonschema pg_net pg_partman pg_repack pg_stat_monitor pg_stat_statements pg_tle pg_trgm
pg_walinspect pgaudit pgcrypto pgjwt pg_prewarm pgmq pgroonga pgroonga_database pgrouting
pgrowlocks pgstattuple pgsodium pgtap plcoffee pljava plls plpgsql plpgsql_check plv8 postgis
postgis_raster postgis_sfcgal postgis_tiger_geocoder postgis_topology postgres_fdw refint rum
seg sslinfo supabase_vault supautils tablefunc tcn timescaledb tsm_system_rows tsm_system_time
unaccent uuid-ossp vector wrappers wal2json
""".split())
UNTRUSTED_LANGUAGES = {"c", "internal", "plpython3u", "plpythonu", "plperlu", "pltclu"}
# Settings a non-superuser can never set (SET or ALTER ROLE/DATABASE ... SET).
SUPERUSER_CONTEXTS = ("superuser", "superuser-backend", "postmaster", "sighup", "backend", "internal")

API_ROLES = ("anon", "authenticated", "service_role")


@dataclass(frozen=True)
class Finding:
    rule: str
    where: str
    detail: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.where}: {self.detail}"


def _walk(node) -> Iterator[tuple[str, dict]]:
    """Every (node type, node) in a libpg_query JSON tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, dict) and key[:1].isupper():
                yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _plpgsql_queries(body: str) -> list[str]:
    """The static SQL statements of a PL/pgSQL body (dynamic EXECUTE strings are not known)."""
    wrapped = f"create function koepon_lint() returns void language plpgsql as $koepon_lint${body}$koepon_lint$"
    try:
        tree = json.loads(parse_plpgsql_json(wrapped))
    except ParseError:
        return []
    out = []
    for kind, node in _walk(tree):
        if kind == "PLpgSQL_stmt_execsql":
            out.append(node["sqlstmt"]["PLpgSQL_expr"]["query"])
        elif kind in ("PLpgSQL_stmt_return_query",) and "query" in node:
            out.append(node["query"]["PLpgSQL_expr"]["query"])
        elif kind in ("PLpgSQL_stmt_fors", "PLpgSQL_stmt_open") and "query" in node:
            out.append(node["query"]["PLpgSQL_expr"]["query"])
    return out


def _defelem(options: list | None, name: str):
    for opt in options or []:
        d = opt.get("DefElem", {})
        if d.get("defname") == name:
            return d.get("arg")
    return None


def _string(arg) -> str | None:
    if isinstance(arg, dict):
        if "List" in arg:
            return _string(arg["List"].get("items"))
        if "String" in arg:
            return arg["String"].get("sval")
        if "A_Const" in arg:
            return (arg["A_Const"].get("sval") or {}).get("sval")
    if isinstance(arg, list) and arg:
        return _string(arg[0])
    return None


def statements(sql: str) -> Iterator[dict]:
    """Every statement of a script, and of the DO blocks and function bodies in it."""
    tree = json.loads(parse_sql_json(sql))
    for raw in tree.get("stmts", []):
        yield from _expand(raw["stmt"])


def _expand(stmt: dict) -> Iterator[dict]:
    yield stmt
    kind, node = next(iter(stmt.items()))
    body, language = None, "sql"
    if kind == "DoStmt":
        body = _string(_defelem(node.get("args"), "as"))
        language = _string(_defelem(node.get("args"), "language")) or "plpgsql"
    elif kind == "CreateFunctionStmt" and "sql_body" not in node:
        body = _string(_defelem(node.get("options"), "as"))
        language = _string(_defelem(node.get("options"), "language")) or "sql"
    if body is None:
        return
    queries = _plpgsql_queries(body) if language == "plpgsql" else [body] if language == "sql" else []
    for q in queries:
        try:
            tree = json.loads(parse_sql_json(q))
        except ParseError:
            continue
        for raw in tree.get("stmts", []):
            yield from _expand(raw["stmt"])


def _allowed_config(name: str) -> bool:
    name = name.lower()
    return any(name == a or (a.endswith(".*") and name.startswith(a[:-1])) for a in ALLOWED_CONFIGS)


def _role_name(spec: dict | None) -> str | None:
    spec = (spec or {}).get("RoleSpec", spec or {})
    return spec.get("rolename")


def statement_findings(stmt: dict, setting_context: dict[str, str]) -> Iterator[tuple[str, str]]:
    """(rule, detail) for one statement."""
    kind, node = next(iter(stmt.items()))
    su, rr = "needs_superuser", "reserved_role"
    if kind == "AlterSystemStmt":
        yield su, "ALTER SYSTEM"
    elif kind == "LoadStmt":
        yield su, "LOAD"
    elif kind == "CreatePLangStmt":
        yield su, "CREATE LANGUAGE"
    elif kind == "SecLabelStmt":
        yield su, "SECURITY LABEL"
    elif kind == "CreateSubscriptionStmt":
        yield su, "CREATE SUBSCRIPTION"
    elif kind == "CopyStmt" and (node.get("filename") or node.get("is_program")):
        yield su, "COPY to or from a server file or program"
    elif kind == "CreatePublicationStmt" and node.get("for_all_tables"):
        yield su, "CREATE PUBLICATION ... FOR ALL TABLES"
    elif kind == "CreateExtensionStmt" and node.get("extname") not in PRIVILEGED_EXTENSIONS:
        yield su, f"CREATE EXTENSION {node.get('extname')} (not in supautils.privileged_extensions)"
    elif kind == "CreateFunctionStmt":
        lang = (_string(_defelem(node.get("options"), "language")) or "sql").lower()
        if lang in UNTRUSTED_LANGUAGES:
            yield su, f"a function in the untrusted language {lang}"
    elif kind in ("CreateRoleStmt", "AlterRoleStmt"):
        sup = _defelem(node.get("options"), "superuser")
        if sup and sup.get("Boolean", {}).get("boolval"):
            yield su, "a SUPERUSER role"
        name = node.get("role") if kind == "CreateRoleStmt" else _role_name(node.get("role"))
        if kind == "AlterRoleStmt" and name in RESERVED_ROLES:
            yield rr, f"ALTER ROLE {name} (supautils.reserved_roles)"
        elif kind == "AlterRoleStmt" and name == "postgres":
            yield rr, "ALTER ROLE postgres: only a superuser may alter supautils.privileged_role"
    elif kind == "DropRoleStmt":
        for r in node.get("roles", []):
            if _role_name(r) in RESERVED_ROLES:
                yield rr, f"DROP ROLE {_role_name(r)} (supautils.reserved_roles)"
    elif kind == "RenameStmt" and node.get("renameType") == "OBJECT_ROLE":
        if node.get("subname") in RESERVED_ROLES:
            yield rr, f"ALTER ROLE {node.get('subname')} RENAME (supautils.reserved_roles)"
    elif kind == "GrantRoleStmt":
        if node.get("is_grant"):
            for g in node.get("granted_roles", []):
                name = g.get("AccessPriv", {}).get("priv_name")
                if name in RESERVED_MEMBERSHIPS:
                    yield rr, f"GRANT {name} (supautils.reserved_memberships)"
        for g in node.get("grantee_roles", []):
            name = _role_name(g)
            if name in RESERVED_ROLES and not RESERVED_ROLES[name]:
                yield rr, f"GRANT/REVOKE a role TO/FROM {name} (supautils.reserved_roles)"
    elif kind == "AlterOwnerStmt" or (kind == "AlterTableStmt" and any(
            c.get("AlterTableCmd", {}).get("subtype") == "AT_ChangeOwner" for c in node.get("cmds", []))):
        owner = _role_name(node.get("newowner")) or next(
            (_role_name(c["AlterTableCmd"].get("newowner")) for c in node.get("cmds", [])
             if c.get("AlterTableCmd", {}).get("subtype") == "AT_ChangeOwner"), None)
        if owner in RESERVED_ROLES:
            yield rr, f"OWNER TO {owner}: postgres is no member of it"
    if kind in ("VariableSetStmt", "AlterRoleSetStmt", "AlterDatabaseSetStmt"):
        setstmt = node if kind == "VariableSetStmt" else node.get("setstmt", {})
        name = (setstmt.get("name") or "").lower()
        if kind == "AlterRoleSetStmt":
            role = _role_name(node.get("role"))
            if role in RESERVED_ROLES and not RESERVED_ROLES[role]:
                yield rr, f"ALTER ROLE {role} SET (supautils.reserved_roles)"
        if name and not _allowed_config(name):
            context = setting_context.get(name)
            if context in SUPERUSER_CONTEXTS:
                yield su, f"setting {name} (context {context}; not in privileged_role_allowed_configs)"
            elif context is None and "." in name and kind != "VariableSetStmt":
                yield su, (f"ALTER ... SET {name}: an unregistered custom setting on a role or database "
                           "needs a superuser unless supautils.privileged_role_allowed_configs names it")


def script_findings(path: Path, setting_context: dict[str, str]) -> list[Finding]:
    """needs_superuser and reserved_role findings for one SQL file, by line."""
    out = []
    for st in sqlsplit.split(path.read_text()):
        if not st.has_code:
            continue
        try:
            stmts = list(statements(st.text))
        except ParseError as exc:
            out.append(Finding("unparsable", f"{path.name}:{st.line}", str(exc)))
            continue
        for stmt in stmts:
            for rule, detail in statement_findings(stmt, setting_context):
                out.append(Finding(rule, f"{path.name}:{st.line}", detail))
    return out


def unguarded_writes(sql: str) -> list[str]:
    """UPDATE/DELETE statements without WHERE in a SQL text (pg-safeupdate refuses them)."""
    out = []
    try:
        tree = json.loads(parse_sql_json(sql))
    except ParseError:
        return out
    for kind, node in _walk(tree):
        if kind in ("UpdateStmt", "DeleteStmt") and node.get("whereClause") is None:
            rel = node.get("relation", {})
            out.append(f"{'UPDATE' if kind == 'UpdateStmt' else 'DELETE'} "
                       f"{rel.get('schemaname', '')}.{rel.get('relname', '')} without WHERE".replace(" .", " "))
    return out


_FUNCS = """
select p.oid, n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), l.lanname, p.prosrc,
       p.prorettype = 'trigger'::regtype
         or exists (select 1 from unnest(array[%s]) r(role) where has_function_privilege(r.role, p.oid, 'execute'))
from pg_proc p
join pg_namespace n on n.oid = p.pronamespace
join pg_language l on l.oid = p.prolang
where n.nspname in ('public', 'app', 'private') and l.lanname in ('sql', 'plpgsql')
  and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e')
"""


def safeupdate_findings(conn: psycopg.Connection) -> list[Finding]:
    """Functions the API's sessions run that UPDATE or DELETE without WHERE.

    Hosted loads pg-safeupdate for `authenticator`'s sessions, which refuses such a statement
    anywhere in them, functions included. "Run by the API" is: executable by anon,
    authenticated or service_role, a trigger function (triggers fire in the API's
    transaction), or called by name from such a function (security definer helpers)."""
    rows = conn.execute(_FUNCS % ", ".join(f"'{r}'" for r in API_ROLES)).fetchall()
    funcs = {}
    for oid, schema, name, args, lang, src, api in rows:
        queries = _plpgsql_queries(src) if lang == "plpgsql" else [src]
        funcs[oid] = {"name": f"{schema}.{name}({args})", "qualified": f"{schema}.{name}",
                      "src": src, "queries": queries, "api": bool(api)}
    run_by_api = {oid for oid, f in funcs.items() if f["api"]}
    changed = True
    while changed:
        changed = False
        bodies = " ".join(funcs[o]["src"].lower() for o in run_by_api)
        for oid, f in funcs.items():
            if oid not in run_by_api and re.search(rf"\b{re.escape(f['qualified'].lower())}\s*\(", bodies):
                run_by_api.add(oid)
                changed = True
    out = []
    for oid in sorted(run_by_api, key=lambda o: funcs[o]["name"]):
        for q in funcs[oid]["queries"]:
            for detail in unguarded_writes(q):
                out.append(Finding("safeupdate", funcs[oid]["name"], detail))
    return out


def findings(conn: psycopg.Connection, files: list[Path]) -> list[Finding]:
    """Every rule: the scripts (migrations) statically, the migrated database's functions."""
    context = dict(conn.execute("select lower(name), context from pg_settings").fetchall())
    out = []
    for f in files:
        out.extend(script_findings(f, context))
    out.extend(safeupdate_findings(conn))
    return out
