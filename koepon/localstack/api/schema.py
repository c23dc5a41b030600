"""The schema cache: exposed functions, relations and relationships, role settings, config.

The exposed schemas are PostgREST's `db-schemas`, read from the in-database setting
`pgrst.db_schemas` on the `authenticator` role (default `public`); the first is the default,
the others are reached with `Accept-Profile` / `Content-Profile`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from . import relationships as rels

EXPOSED_SCHEMA = "public"

_FUNCTIONS = """
select p.proname, p.provolatile::text, p.proretset, format_type(p.prorettype, null),
       t.typtype::text, p.pronargdefaults, obj_description(p.oid, 'pg_proc'),
       (select coalesce(json_agg(json_build_object(
                 'name', coalesce(a.n, ''), 'type', format_type(a.t, null), 'mode', a.m)
                 order by a.o), '[]'::json)
          from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]),
                      coalesce(p.proargmodes::text[],
                               array_fill('i'::text, array[cardinality(
                                 coalesce(p.proallargtypes, p.proargtypes::oid[]))])),
                      coalesce(p.proargnames,
                               array_fill(''::text, array[cardinality(
                                 coalesce(p.proallargtypes, p.proargtypes::oid[]))])))
               with ordinality as a(t, m, n, o)) as args,
       t.typrelid <> 0 as has_relid
  from pg_proc p
  join pg_namespace n on n.oid = p.pronamespace
  join pg_type t on t.oid = p.prorettype
 where n.nspname = %s and p.prokind = 'f'
   and t.typname not in ('trigger', 'event_trigger')
 order by p.proname, p.oid
"""

_RELATIONS = """
select c.relname, c.relkind::text, obj_description(c.oid, 'pg_class'),
       (select coalesce(json_agg(json_build_object(
                 'name', a.attname, 'type', format_type(a.atttypid, a.atttypmod),
                 'nullable', not a.attnotnull, 'has_default', a.atthasdef,
                 'comment', col_description(c.oid, a.attnum)) order by a.attnum), '[]'::json)
          from pg_attribute a
         where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped) as columns,
       (select coalesce(array_agg(a.attname order by a.attnum), '{}')
          from pg_index i join pg_attribute a on a.attrelid = i.indrelid
                                              and a.attnum = any(i.indkey)
         where i.indrelid = c.oid and i.indisprimary) as pk
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
 where n.nspname = %s and c.relkind in ('r', 'v', 'm', 'f', 'p')
 order by c.relname
"""

_ROLE_SETTINGS = """
select r.rolname, s.setdatabase <> 0, s.setconfig
  from pg_db_role_setting s join pg_roles r on r.oid = s.setrole
 where s.setdatabase in (0, (select oid from pg_database where datname = current_database()))
 order by s.setdatabase
"""

_USERSET = "select name from pg_settings where context in ('user', 'superuser') "


@dataclass(frozen=True)
class Arg:
    name: str
    type: str
    has_default: bool


@dataclass(frozen=True)
class Function:
    name: str
    volatility: str  # i, s, v
    returns_set: bool
    return_type: str
    kind: str  # void | scalar | composite
    args: tuple[Arg, ...]
    out_columns: tuple[tuple[str, str], ...]
    comment: str | None

    @property
    def read_only(self) -> bool:
        return self.volatility in ("i", "s")

    @property
    def required(self) -> frozenset[str]:
        return frozenset(a.name for a in self.args if not a.has_default)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(a.name for a in self.args)

    @property
    def single_unnamed_json(self) -> bool:
        return (len(self.args) == 1 and self.args[0].name == ""
                and self.args[0].type in ("json", "jsonb"))


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool
    has_default: bool
    comment: str | None


@dataclass(frozen=True)
class Relation:
    name: str
    kind: str
    comment: str | None
    columns: tuple[Column, ...]
    pk: tuple[str, ...]


@dataclass
class SchemaCache:
    """What one exposed schema serves; `profiles` holds every exposed schema's cache (this one first)."""

    functions: dict[str, list[Function]] = field(default_factory=dict)
    relations: dict[str, Relation] = field(default_factory=dict)
    role_settings: dict[str, dict[str, str]] = field(default_factory=dict)
    pre_request: str | None = None
    schema: str = EXPOSED_SCHEMA
    schemas: tuple[str, ...] = (EXPOSED_SCHEMA,)
    profiles: dict[str, SchemaCache] = field(default_factory=dict)
    relationships: dict = field(default_factory=dict)
    aggregates: bool = False
    tx_override: bool = False

    def profile(self, name: str | None) -> SchemaCache:
        return self if not name else self.profiles.get(name, self)


def _function(row) -> Function:
    name, vol, retset, rettype, typtype, ndefaults, comment, args, has_relid = row
    in_args = [a for a in args if a["mode"] in ("i", "b", "v")]
    outs = tuple((a["name"], a["type"]) for a in args if a["mode"] in ("o", "b", "t"))
    first_default = len(in_args) - (ndefaults or 0)
    parsed = tuple(Arg(a["name"], a["type"], i >= first_default) for i, a in enumerate(in_args))
    if rettype == "void":
        kind = "void"
    elif typtype == "c" or (rettype == "record" and outs) or has_relid:
        kind = "composite"
    elif rettype == "record":
        kind = "composite"
    else:
        kind = "scalar"
    return Function(name, vol, retset, rettype, kind, parsed, outs, comment)


async def _load_schema(conn, schema: str) -> SchemaCache:
    cache = SchemaCache(schema=schema)
    cur = await conn.execute(_FUNCTIONS, (schema,))
    for row in await cur.fetchall():
        fn = _function(row)
        cache.functions.setdefault(fn.name, []).append(fn)
    cur = await conn.execute(_RELATIONS, (schema,))
    for name, kind, comment, columns, pk in await cur.fetchall():
        cols = tuple(Column(c["name"], c["type"], c["nullable"], c["has_default"], c["comment"])
                     for c in columns)
        cache.relations[name] = Relation(name, kind, comment, cols, tuple(pk))
    return cache


async def load(conn) -> SchemaCache:
    cur = await conn.execute(_USERSET)
    userset = {r[0] for r in await cur.fetchall()}
    role_settings: dict[str, dict[str, str]] = {}
    cur = await conn.execute(_ROLE_SETTINGS)
    for role, _db_specific, config in await cur.fetchall():
        settings = role_settings.setdefault(role, {})
        for item in config or ():
            key, _, value = item.partition("=")
            settings[key] = value
    auth = role_settings.get("authenticator", {})
    schemas = tuple(s.strip() for s in auth.get("pgrst.db_schemas", EXPOSED_SCHEMA).split(",") if s.strip())
    pre_request = auth.get("pgrst.db_pre_request") or None
    aggregates = auth.get("pgrst.db_aggregates_enabled", "false").lower() in ("true", "on", "1", "yes")
    # `Prefer: tx=` is honoured only when db-tx-end allows the override (hosted Supabase: it does not).
    tx_override = auth.get("pgrst.db_tx_end", "commit").endswith("-allow-override")
    for role, settings in list(role_settings.items()):
        role_settings[role] = {
            k: v for k, v in settings.items()
            if not k.startswith("pgrst.") and k != "search_path" and (k in userset or "." in k)}
    profiles = {s: await _load_schema(conn, s) for s in schemas}
    cur = await conn.execute(rels.FK_RELS)
    fk_rows = await cur.fetchall()
    cur = await conn.execute(rels.VIEW_KEY_DEPS, {"schemas": list(schemas)})
    dep_rows = await cur.fetchall()
    cur = await conn.execute(rels.COMPUTED_RELS)
    computed_rows = await cur.fetchall()
    views = {(c.schema, r.name) for c in profiles.values() for r in c.relations.values() if r.kind in ("v", "m")}
    pks = {(c.schema, r.name): r.pk for c in profiles.values() for r in c.relations.values() if r.pk}
    relationships = rels.build(fk_rows, dep_rows, views, pks, list(schemas), computed_rows)
    for c in profiles.values():
        for name, r in list(c.relations.items()):
            if not r.pk and pks.get((c.schema, name)):
                # A view's primary key: its columns that come from its table's primary key.
                c.relations[name] = dataclasses.replace(r, pk=tuple(pks[(c.schema, name)]))
    for c in profiles.values():
        c.role_settings = role_settings
        c.pre_request = pre_request
        c.schemas = schemas
        c.profiles = profiles
        c.relationships = relationships
        c.aggregates = aggregates
        c.tx_override = tx_override
    return profiles[schemas[0]]
