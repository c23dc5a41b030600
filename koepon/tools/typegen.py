"""`koepon gen types typescript`: the `Database` type the Supabase CLI generates, without Docker.

Same shape as `supabase gen types typescript` (postgres-meta's TypeScript template): per exposed
schema `Tables` / `Views` (Row, Insert, Update for tables and updatable views, and
`Relationships` for embedding — foreign keys, also through views, found as the local API finds
them), `Functions` (Args / Returns, overloads as a union, and `SetofOptions` for a function returning
a table's or view's rows: computed relationships are not in `Relationships` but here, with `from`
the row type the function takes, which is where postgrest-js looks for them), `Enums`,
`CompositeTypes`; then the
`Json` type and the `Tables<>`, `TablesInsert<>`, `TablesUpdate<>`, `Enums<>`,
`CompositeTypes<>` helpers and `Constants`. `createClient<Database>(…)` then type-checks
`from()`, `select()` with embeds, filters and `rpc()` calls.
"""

from __future__ import annotations

import json
import re

from ..localstack.api import relationships as rels

_TS = {
    "bool": "boolean",
    "int2": "number", "int4": "number", "int8": "number", "float4": "number", "float8": "number",
    "numeric": "number", "oid": "number",
    "json": "Json", "jsonb": "Json",
    "void": "undefined", "record": "Record<string, unknown>",
}
_STRING = {"bytea", "bpchar", "varchar", "date", "text", "citext", "time", "timetz", "timestamp",
           "timestamptz", "uuid", "vector", "interval", "inet", "cidr", "macaddr", "name", "char",
           "tsvector", "tsquery", "int4range", "int8range", "numrange", "tsrange", "tstzrange",
           "daterange", "regconfig"}

_TYPES = """
select t.oid, n.nspname, t.typname, t.typtype::text, t.typelem, t.typrelid,
       coalesce((select array_agg(e.enumlabel order by e.enumsortorder) from pg_enum e
                  where e.enumtypid = t.oid), '{}')
  from pg_type t join pg_namespace n on n.oid = t.typnamespace
"""

# Row types of relations (tables, views, composite types): relkind, and the name as format_type
# writes it under the connection's search_path (postgres-meta's `format`, SetofOptions' `from`).
_ROW_TYPES = """
select t.oid, c.relkind::text, format_type(t.oid, null)
  from pg_type t join pg_class c on c.oid = t.typrelid
"""

_RELATIONS = """
select c.oid, c.relname, c.relkind::text,
       pg_relation_is_updatable(c.oid::regclass, false) & 16 = 16 as deletable,
       pg_relation_is_updatable(c.oid::regclass, false) & 4 = 4 as updatable,
       pg_relation_is_updatable(c.oid::regclass, false) & 8 = 8 as insertable
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
 where n.nspname = %s and c.relkind in ('r', 'v', 'm', 'f', 'p') and not c.relispartition
 order by c.relname
"""

_COLUMNS = """
select a.attname, a.atttypid, not a.attnotnull, a.atthasdef or a.attidentity <> '' or a.attgenerated <> '',
       a.attidentity = 'a' or a.attgenerated <> '',
       col_is_updatable
  from pg_attribute a
  cross join lateral (select coalesce((select is_updatable = 'YES' from information_schema.columns
                                        where table_schema = %s and table_name = %s
                                          and column_name = a.attname), true) as col_is_updatable) u
 where a.attrelid = %s and a.attnum > 0 and not a.attisdropped
 order by a.attnum
"""

_FUNCTIONS = """
select p.proname, p.proretset, p.prorettype, p.pronargdefaults, p.prorows,
       coalesce(p.proallargtypes, p.proargtypes::oid[]),
       coalesce(p.proargmodes::text[], array_fill('i'::text, array[p.pronargs::int])),
       coalesce(p.proargnames, array_fill(''::text, array[cardinality(coalesce(p.proallargtypes,
                                                                            p.proargtypes::oid[]))]))
  from pg_proc p join pg_namespace n on n.oid = p.pronamespace
 where n.nspname = %s and p.prokind = 'f'
   and p.prorettype not in ('trigger'::regtype, 'event_trigger'::regtype)
 order by p.proname, p.oid
"""


def _q(name: str) -> str:
    return json.dumps(name)


def _key(name: str) -> str:
    """A property name as the Supabase CLI writes it: bare when it is an identifier."""
    return name if re.fullmatch(r"[A-Za-z_$][A-Za-z0-9_$]*", name) else json.dumps(name)


_TABLE_KINDS = {"r": "Tables", "p": "Tables", "f": "Tables", "v": "Views", "m": "Views"}


class _Types:
    def __init__(self, conn, schemas: list[str] | None = None):
        self.by_oid = {row[0]: row[1:] for row in conn.execute(_TYPES).fetchall()}
        self.row_types = {row[0]: row[1:] for row in conn.execute(_ROW_TYPES).fetchall()}
        self.schemas = schemas or []

    def relation_name(self, oid: int) -> str | None:
        """The table, view or composite type whose rows `oid` is the type of (postgres-meta's
        `to`: a table or view of a generated schema, or any composite type), else None."""
        entry, row = self.by_oid.get(oid), self.row_types.get(oid)
        if entry is None or row is None:
            return None
        if row[0] in _TABLE_KINDS and entry[0] not in self.schemas:
            return None
        return entry[1]

    def ts(self, oid: int) -> str:
        entry = self.by_oid.get(oid)
        if entry is None:
            return "unknown"
        schema, name, kind, elem, relid, _labels = entry
        if elem and name.startswith("_"):
            return f"{self.ts(elem)}[]"
        if kind == "e":
            return f"Database[{_q(schema)}][\"Enums\"][{_q(name)}]"
        row = self.row_types.get(oid)
        if row is not None and row[0] in _TABLE_KINDS:
            # A table's or view's row (the argument of a computed relationship), as the CLI writes it.
            if schema not in self.schemas:
                return "unknown"
            return f"Database[{_q(schema)}][{_q(_TABLE_KINDS[row[0]])}][{_q(name)}][\"Row\"]"
        if kind == "c" and schema not in ("pg_catalog", "information_schema"):
            return f"Database[{_q(schema)}][\"CompositeTypes\"][{_q(name)}]"
        if kind == "d":
            return "unknown"
        if name in _TS:
            return _TS[name]
        if name in _STRING:
            return "string"
        return "unknown"


def _rels(conn, schemas: list[str]) -> dict:
    fk_rows = conn.execute(rels.FK_RELS).fetchall()
    dep_rows = conn.execute(rels.VIEW_KEY_DEPS, {"schemas": schemas}).fetchall()
    return rels.build(fk_rows, dep_rows, set(), {}, schemas)


def _setof_options(types: _Types, retset: bool, rettype: int, prorows: float | None, argtypes: list[int]) -> str:
    """postgres-meta's SetofOptions for a function returning a relation's (or composite type's)
    rows: `from` "*" for any caller, or the row type of the function's only argument (a computed
    relationship, embedded from that table or view); `isOneToOne` unless more than one row is
    estimated (`rows 1` or a function without setof); `isSetofReturn` as declared."""
    to = types.relation_name(rettype)
    if to is None:
        return ""
    one = not ((prorows or 0) > 1)
    source, set_of = "*", retset
    if len(argtypes) == 1 and argtypes[0] in types.row_types:
        source = types.row_types[argtypes[0]][1]
        one = one if retset else True
    return (f"; SetofOptions: {{ from: {_q(source)}; to: {_q(to)}; isOneToOne: {'true' if one else 'false'}; "
            f"isSetofReturn: {'true' if set_of else 'false'} }}")


def _relationships(found: list, indent: str) -> list[str]:
    out = [f"{indent}Relationships: ["]
    seen = set()
    for r in found:
        if r.card not in ("m2o", "o2o"):
            continue
        key = (r.cons, r.ftable, r.cols)
        if key in seen:
            continue
        seen.add(key)
        out += [f"{indent}  {{",
                f"{indent}    foreignKeyName: {_q(r.cons)}",
                f"{indent}    columns: [{', '.join(_q(c) for c, _ in r.cols)}]",
                f"{indent}    isOneToOne: {'true' if r.card == 'o2o' else 'false'}",
                f"{indent}    referencedRelation: {_q(r.ftable[1])}",
                f"{indent}    referencedColumns: [{', '.join(_q(f) for _, f in r.cols)}]",
                f"{indent}  }},"]
    out.append(f"{indent}]")
    return out


def _schema(conn, types: _Types, schema: str, relmap: dict) -> list[str]:
    tables, views = [], []
    for oid, name, kind, _deletable, updatable, insertable in conn.execute(_RELATIONS, (schema,)).fetchall():
        cols = conn.execute(_COLUMNS, (schema, name, oid)).fetchall()
        block = [f"      {_key(name)}: {{", "        Row: {"]
        for col, toid, nullable, _has_default, _always, _upd in cols:
            block.append(f"          {_key(col)}: {types.ts(toid)}{' | null' if nullable else ''}")
        block.append("        }")
        is_table = kind in ("r", "p", "f")
        if is_table or insertable:
            block.append("        Insert: {")
            for col, toid, nullable, has_default, always, _upd in cols:
                if always and not is_table:
                    continue
                optional = "?" if (nullable or has_default or not is_table) else ""
                block.append(f"          {_key(col)}{optional}: {types.ts(toid)}{' | null' if nullable else ''}")
            block.append("        }")
        if is_table or updatable:
            block.append("        Update: {")
            for col, toid, nullable, _has_default, _always, _upd in cols:
                block.append(f"          {_key(col)}?: {types.ts(toid)}{' | null' if nullable else ''}")
            block.append("        }")
        block += _relationships(relmap.get((schema, name), []), "        ")
        block.append("      }")
        (tables if is_table else views).extend(block)
    functions: dict[str, list[str]] = {}
    for name, retset, rettype, ndefaults, prorows, argtypes, modes, names in conn.execute(
            _FUNCTIONS, (schema,)).fetchall():
        ins = [(n, t) for n, t, m in zip(names, argtypes, modes, strict=False) if m in ("i", "b", "v")]
        outs = [(n, t) for n, t, m in zip(names, argtypes, modes, strict=False) if m in ("o", "b", "t")]
        if len(ins) == 1 and ins[0][0] == "" and types.ts(ins[0][1]) == "Json":
            args = "{ \"\": Json }"
        elif not ins:
            args = "never"
        else:
            first_default = len(ins) - (ndefaults or 0)
            args = "{ " + "; ".join(f"{_key(n)}{'?' if i >= first_default else ''}: {types.ts(t)}"
                                    for i, (n, t) in enumerate(ins)) + " }"
        ret_entry = types.by_oid.get(rettype)
        if outs and (ret_entry is None or ret_entry[1] == "record"):
            returns = "{ " + "; ".join(f"{_key(n)}: {types.ts(t)}" for n, t in outs) + " }"
        elif ret_entry is not None and ret_entry[4]:  # a relation's row type
            cols = conn.execute(_COLUMNS, (ret_entry[0], ret_entry[1], ret_entry[4])).fetchall()
            returns = "{ " + "; ".join(f"{_key(c[0])}: {types.ts(c[1])}{' | null' if c[2] else ''}"
                                       for c in cols) + " }"
        else:
            returns = types.ts(rettype)
        setof = _setof_options(types, retset, rettype, prorows, argtypes)
        # A set of a relation's rows estimated at one row (`rows 1`) is typed as one row, as the CLI
        # does, only where SetofOptions tells postgrest-js to restore the array for a direct call.
        if retset and not (setof and (prorows or 0) <= 1):
            returns = f"{returns}[]"
        functions.setdefault(name, []).append(f"{{ Args: {args}; Returns: {returns}{setof} }}")
    enums = []
    composites = []
    for _oid, (nsp, tname, kind, _elem, relid, labels) in sorted(types.by_oid.items(), key=lambda x: x[1][1]):
        if nsp != schema:
            continue
        if kind == "e":
            enums.append(f"      {_key(tname)}: {' | '.join(_q(v) for v in labels)}")
        elif kind == "c" and not conn.execute("select 1 from pg_class where oid = %s and relkind <> 'c'",
                                                  (relid,)).fetchone():
            attrs = conn.execute(_COLUMNS, (nsp, tname, relid)).fetchall()
            composites.append(f"      {_key(tname)}: {{ " + "; ".join(
                f"{_key(a[0])}: {types.ts(a[1])} | null" for a in attrs) + " }")
    out = [f"  {_key(schema)}: {{", "    Tables: {"]
    out += tables or ["      [_ in never]: never"]
    out += ["    }", "    Views: {"]
    out += views or ["      [_ in never]: never"]
    out += ["    }", "    Functions: {"]
    out += [f"      {_key(n)}: " + " | ".join(sigs) for n, sigs in functions.items()] or ["      [_ in never]: never"]
    out += ["    }", "    Enums: {"]
    out += enums or ["      [_ in never]: never"]
    out += ["    }", "    CompositeTypes: {"]
    out += composites or ["      [_ in never]: never"]
    out += ["    }", "  }"]
    return out


HELPERS = '''
type DatabaseWithoutInternals = Omit<Database, "__InternalSupabase">

type DefaultSchema = DatabaseWithoutInternals[Extract<keyof Database, "public">]

export type Tables<
  DefaultSchemaTableNameOrOptions extends
    | keyof (DefaultSchema["Tables"] & DefaultSchema["Views"])
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof (DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"] &
        DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Views"])
    : never = never,
> = DefaultSchemaTableNameOrOptions extends {
  schema: keyof DatabaseWithoutInternals
}
  ? (DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"] &
      DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Views"])[TableName] extends {
      Row: infer R
    }
    ? R
    : never
  : DefaultSchemaTableNameOrOptions extends keyof (DefaultSchema["Tables"] & DefaultSchema["Views"])
    ? (DefaultSchema["Tables"] & DefaultSchema["Views"])[DefaultSchemaTableNameOrOptions] extends {
        Row: infer R
      }
      ? R
      : never
    : never

export type TablesInsert<
  DefaultSchemaTableNameOrOptions extends
    | keyof DefaultSchema["Tables"]
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"]
    : never = never,
> = DefaultSchemaTableNameOrOptions extends {
  schema: keyof DatabaseWithoutInternals
}
  ? DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"][TableName] extends {
      Insert: infer I
    }
    ? I
    : never
  : DefaultSchemaTableNameOrOptions extends keyof DefaultSchema["Tables"]
    ? DefaultSchema["Tables"][DefaultSchemaTableNameOrOptions] extends {
        Insert: infer I
      }
      ? I
      : never
    : never

export type TablesUpdate<
  DefaultSchemaTableNameOrOptions extends
    | keyof DefaultSchema["Tables"]
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"]
    : never = never,
> = DefaultSchemaTableNameOrOptions extends {
  schema: keyof DatabaseWithoutInternals
}
  ? DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"][TableName] extends {
      Update: infer U
    }
    ? U
    : never
  : DefaultSchemaTableNameOrOptions extends keyof DefaultSchema["Tables"]
    ? DefaultSchema["Tables"][DefaultSchemaTableNameOrOptions] extends {
        Update: infer U
      }
      ? U
      : never
    : never

export type Enums<
  DefaultSchemaEnumNameOrOptions extends
    | keyof DefaultSchema["Enums"]
    | { schema: keyof DatabaseWithoutInternals },
  EnumName extends DefaultSchemaEnumNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[DefaultSchemaEnumNameOrOptions["schema"]]["Enums"]
    : never = never,
> = DefaultSchemaEnumNameOrOptions extends {
  schema: keyof DatabaseWithoutInternals
}
  ? DatabaseWithoutInternals[DefaultSchemaEnumNameOrOptions["schema"]]["Enums"][EnumName]
  : DefaultSchemaEnumNameOrOptions extends keyof DefaultSchema["Enums"]
    ? DefaultSchema["Enums"][DefaultSchemaEnumNameOrOptions]
    : never

export type CompositeTypes<
  PublicCompositeTypeNameOrOptions extends
    | keyof DefaultSchema["CompositeTypes"]
    | { schema: keyof DatabaseWithoutInternals },
  CompositeTypeName extends PublicCompositeTypeNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[PublicCompositeTypeNameOrOptions["schema"]]["CompositeTypes"]
    : never = never,
> = PublicCompositeTypeNameOrOptions extends {
  schema: keyof DatabaseWithoutInternals
}
  ? DatabaseWithoutInternals[PublicCompositeTypeNameOrOptions["schema"]]["CompositeTypes"][CompositeTypeName]
  : PublicCompositeTypeNameOrOptions extends keyof DefaultSchema["CompositeTypes"]
    ? DefaultSchema["CompositeTypes"][PublicCompositeTypeNameOrOptions]
    : never
'''


def generate(conn, schemas: list[str]) -> str:
    """The TypeScript module for `schemas` (the first is the client's default)."""
    types = _Types(conn, schemas)
    relmap = _rels(conn, schemas)
    out = ["export type Json =", "  | string", "  | number", "  | boolean", "  | null",
           "  | { [key: string]: Json | undefined }", "  | Json[]", "",
           "export type Database = {",
           "  // Allows to automatically instantiate createClient with right options",
           "  // instead of createClient<Database, { PostgrestVersion: 'XX' }>(URL, KEY)",
           "  __InternalSupabase: {", "    PostgrestVersion: \"14.1\"", "  }"]
    for schema in schemas:
        out += _schema(conn, types, schema, relmap)
    out.append("}")
    constants = ["export const Constants = {"]
    for schema in schemas:
        labels = [(t[1], t[5]) for t in types.by_oid.values() if t[0] == schema and t[2] == "e"]
        constants.append(f"  {_key(schema)}: {{")
        constants.append("    Enums: {" + ", ".join(f"{_q(n)}: {json.dumps(v)}" for n, v in sorted(labels)) + "},")
        constants.append("  },")
    constants.append("} as const")
    if "public" not in schemas:
        return "\n".join(out) + "\n" + "\n".join(constants) + "\n"
    return "\n".join(out) + "\n" + HELPERS + "\n" + "\n".join(constants) + "\n"
