"""Relationships for resource embedding, found as PostgREST finds them (SchemaCache.hs, Plan.hs).

Foreign keys between tables in any schema give many-to-one (or one-to-one, when the key columns
are also a primary key or unique) relationships; a view whose columns come straight from a
table's key columns inherits them (PostgREST reads the view's rewrite rule for each column's
origin); each relationship gets its inverse; a junction whose key columns hold foreign keys to two
relations gives many-to-many. Only relationships whose both ends (and junction) are in an exposed
schema are kept, keyed by the origin.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from .errors import ApiError

# PostgREST's allM2OandO2ORels, unchanged.
FK_RELS = """
with pks_uniques_cols as (
  select conrelid, array_agg(key order by key) as cols
    from pg_constraint, lateral unnest(conkey) as _(key)
   where contype in ('p', 'u') and connamespace <> 'pg_catalog'::regnamespace
   group by oid, conrelid
)
select ns1.nspname, tab.relname, ns2.nspname, other.relname,
       traint.conrelid = traint.confrelid, traint.conname,
       column_info.cols_and_fcols,
       (column_info.cols in (select cols from pks_uniques_cols where conrelid = traint.conrelid))
  from pg_constraint traint
  join lateral (
    select array_agg(array[cols.attname::text, refs.attname::text] order by ord) as cols_and_fcols,
           array_agg(cols.attnum order by cols.attnum) as cols
      from unnest(traint.conkey, traint.confkey) with ordinality as _(col, ref, ord)
      join pg_attribute cols on cols.attrelid = traint.conrelid and cols.attnum = col
      join pg_attribute refs on refs.attrelid = traint.confrelid and refs.attnum = ref
  ) as column_info on true
  join pg_namespace ns1 on ns1.oid = traint.connamespace
  join pg_class tab on tab.oid = traint.conrelid
  join pg_class other on other.oid = traint.confrelid
  join pg_namespace ns2 on ns2.oid = other.relnamespace
 where traint.contype = 'f' and traint.conparentid = 0
 order by traint.conrelid, traint.conname
"""

# PostgREST's allViewsKeyDependencies: which view columns come from which key columns. The
# rewrite rule's node tree is turned into JSON just far enough to read each target entry's origin.
VIEW_KEY_DEPS = r"""
with recursive
pks_fks as (
  select contype::text as contype, conname, array_length(conkey, 1) as ncol,
         conrelid as resorigtbl, col as resorigcol, ord
    from pg_constraint left join lateral unnest(conkey) with ordinality as _(col, ord) on true
   where contype in ('p', 'f')
  union
  select concat(contype, '_ref') as contype, conname, array_length(confkey, 1) as ncol,
         confrelid, col, ord
    from pg_constraint left join lateral unnest(confkey) with ordinality as _(col, ord) on true
   where contype = 'f'
),
views as (
  select c.oid as view_id, c.relnamespace as view_schema_id, n.nspname as view_schema,
         c.relname as view_name, r.ev_action as view_definition
    from pg_class c
    join pg_namespace n on n.oid = c.relnamespace
    join pg_rewrite r on r.ev_class = c.oid
   where c.relkind in ('v', 'm') and n.nspname = any(%(schemas)s::text[])
),
transform_json as (
  select view_id, view_schema_id, view_schema, view_name,
    replace(replace(replace(replace(replace(replace(replace(regexp_replace(replace(replace(
    replace(replace(replace(replace(replace(replace(replace(replace(replace(
      view_definition::text,
      '<>', '()'), ',', ''), E'\\{', ''), E'\\}', ''),
      ' :targetList ', ',"targetList":'), ' :resno ', ',"resno":'),
      ' :resorigtbl ', ',"resorigtbl":'), ' :resorigcol ', ',"resorigcol":'),
      '{', '{ :'), '((', '{(('), '({', '{({'),
      ' :[^}{,]+', ',"":', 'g'),
      ',"":}', '}'), ',"":,', ','), '{(', '('), '{,', '{'), '(', '['), ')', ']'), ' ', ','
    )::json as view_definition
  from views
),
target_entries as (
  select view_id, view_schema_id, view_schema, view_name,
         json_array_elements(view_definition->0->'targetList') as entry
    from transform_json
),
results as (
  select view_id, view_schema_id, view_schema, view_name,
         (entry->>'resno')::int as view_column, (entry->>'resorigtbl')::oid as resorigtbl,
         (entry->>'resorigcol')::int as resorigcol
    from target_entries
),
recursion(view_id, view_schema_id, view_schema, view_name, view_column, resorigtbl, resorigcol,
          is_cycle, path) as (
  select r.*, false, array[resorigtbl] from results r
  union all
  select view.view_id, view.view_schema_id, view.view_schema, view.view_name, view.view_column,
         tab.resorigtbl, tab.resorigcol, tab.resorigtbl = any(path), path || tab.resorigtbl
    from recursion view
    join results tab on view.resorigtbl = tab.view_id and view.resorigcol = tab.view_column
   where not is_cycle
),
repeated_references as (
  select view_id, view_schema, view_name, resorigtbl, resorigcol,
         array_agg(attname::text) as view_columns
    from recursion
    join pg_attribute vcol on vcol.attrelid = view_id and vcol.attnum = view_column
   group by view_id, view_schema, view_name, resorigtbl, resorigcol
)
select sch.nspname, tbl.relname, rep.view_schema, rep.view_name, pks_fks.conname,
       pks_fks.contype,
       json_agg(json_build_array(col.attname, view_columns) order by pks_fks.ord)
  from repeated_references rep
  join pks_fks using (resorigtbl, resorigcol)
  join pg_class tbl on tbl.oid = rep.resorigtbl
  join pg_attribute col on col.attrelid = tbl.oid and col.attnum = rep.resorigcol
  join pg_namespace sch on sch.oid = tbl.relnamespace
 group by sch.nspname, tbl.relname, rep.view_schema, rep.view_name, pks_fks.conname,
          pks_fks.contype, pks_fks.ncol
having ncol = count(*)
"""

# PostgREST's allComputedRels: a function taking one table's (or view's) row type and returning
# another relation's row type is a relationship named after the function; `setof` with `rows 1`
# (or no `setof`) makes it to-one.
COMPUTED_RELS = """
with all_relations as (
  select reltype from pg_class where relkind in ('v', 'r', 'm', 'f', 'p')
)
select (parse_ident(p.pronamespace::regnamespace::text))[1], p.proname::text,
       arg_schema.nspname::text, arg_name.typname::text,
       ret_schema.nspname::text, ret_name.typname::text,
       not p.proretset or p.prorows = 1
  from pg_proc p
  join pg_type arg_name on arg_name.oid = p.proargtypes[0]
  join pg_namespace arg_schema on arg_schema.oid = arg_name.typnamespace
  join pg_type ret_name on ret_name.oid = p.prorettype
  join pg_namespace ret_schema on ret_schema.oid = ret_name.typnamespace
 where p.pronargs = 1
   and p.proargtypes[0] in (select reltype from all_relations)
   and p.prorettype in (select reltype from all_relations)
"""

QI = tuple[str, str]  # (schema, name)
_CARD_ORDER = {"o2m": 0, "m2o": 1, "o2o": 2, "m2m": 3}


@dataclass(frozen=True)
class Junction:
    table: QI
    cons1: str
    cons2: str
    cols_source: tuple[tuple[str, str], ...]  # (origin column, junction column)
    cols_target: tuple[tuple[str, str], ...]  # (target column, junction column)


@dataclass(frozen=True)
class Rel:
    table: QI
    ftable: QI
    is_self: bool
    card: str  # m2o | o2m | o2o | m2m
    cons: str
    cols: tuple[tuple[str, str], ...]  # (column of table, column of ftable)
    table_is_view: bool
    ftable_is_view: bool
    junction: Junction | None = None
    function: QI | None = None  # a computed relationship: the function called with the parent row

    @property
    def to_one(self) -> bool:
        return self.card in ("m2o", "o2o")

    def compressed(self) -> dict:
        """The entry PostgREST lists in an ambiguity error's details."""
        def els(cs):
            return "(" + ", ".join(cs) + ")"
        out = {"embedding": f"{self.table[1]} with {self.ftable[1]}"}
        if self.function is not None:
            out["cardinality"] = "many-to-one" if self.to_one else "one-to-many"
            out["relationship"] = f"{self.function[0]}.{self.function[1]}"
        elif self.card == "m2m":
            j = self.junction
            out["cardinality"] = "many-to-many"
            out["relationship"] = (f"{j.table[1]} using {j.cons1}{els(c for _, c in j.cols_source)} and "
                                   f"{j.cons2}{els(c for _, c in j.cols_target)}")
        else:
            out["cardinality"] = {"m2o": "many-to-one", "o2o": "one-to-one", "o2m": "one-to-many"}[self.card]
            out["relationship"] = (f"{self.cons} using {self.table[1]}{els(c for c, _ in self.cols)} and "
                                   f"{self.ftable[1]}{els(f for _, f in self.cols)}")
        return out

    def hint(self) -> str:
        return f"'{self.ftable[1]}!{self.junction.table[1] if self.junction else self.cons}'"


def _expand(dep_cols: list) -> list[list[tuple[str, str]]]:
    """[(table column, [view columns])] -> each choice of one view column per key column."""
    combos: list[list[tuple[str, str]]] = [[]]
    for tcol, vcols in dep_cols:
        combos = [c + [(tcol, v)] for c in combos for v in vcols]
    return combos


def build(fk_rows, dep_rows, views: set[QI], pks: dict[QI, tuple[str, ...]],
          schemas: list[str], computed_rows=()) -> dict[QI, list[Rel]]:
    """All relationships keyed by their origin, restricted to the exposed schemas."""
    base: list[Rel] = []
    for sch, tab, fsch, ftab, is_self, cons, cols, one_to_one in fk_rows:
        base.append(Rel((sch, tab), (fsch, ftab), is_self, "o2o" if one_to_one else "m2o", cons,
                        tuple((c, f) for c, f in cols), False, False))
    deps: dict[tuple, list] = defaultdict(list)
    for tsch, tname, vsch, vname, cons, ctype, cols in dep_rows:
        deps[((tsch, tname), cons, ctype)].append(((vsch, vname), cols))
        if ctype == "p":
            # A view's primary key: its columns that come from the table's primary key.
            pks.setdefault((vsch, vname), tuple(vc[0] for _, vc in cols))
    rels = list(base)
    for r in base:
        as_view = deps.get((r.table, r.cons, "f"), [])
        as_ref = deps.get((r.ftable, r.cons, "f_ref"), [])
        for view, cols in as_view:
            for kd in _expand(cols):
                rels.append(Rel(view, r.ftable, False, r.card, r.cons,
                                tuple((v, f) for (_, v), (_, f) in zip(kd, r.cols, strict=True)), True, False))
        for view, cols in as_ref:
            for kd in _expand(cols):
                rels.append(Rel(r.table, view, False, r.card, r.cons,
                                tuple((t, v) for (t, _), (_, v) in zip(r.cols, kd, strict=True)), False, True))
        for v1, cols1 in as_view:
            for kd1 in _expand(cols1):
                for v2, cols2 in as_ref:
                    for kd2 in _expand(cols2):
                        rels.append(Rel(v1, v2, v1 == v2, r.card, r.cons,
                                        tuple((a, b) for (_, a), (_, b) in zip(kd1, kd2, strict=True)),
                                        True, True))
    by_table: dict[QI, list[Rel]] = defaultdict(list)
    for r in rels:
        by_table[r.table].append(r)
    m2m: list[Rel] = []
    for j in rels:
        if j.card != "m2o":
            continue
        for k in by_table[j.table]:
            if k.card != "m2o" or k.cons == j.cons:
                continue
            jcols = {c for c, _ in j.cols} | {c for c, _ in k.cols}
            if jcols <= set(pks.get(j.table, ())):
                m2m.append(Rel(j.ftable, k.ftable, j.ftable == k.ftable, "m2m", "", (),
                               j.ftable_is_view, k.ftable_is_view,
                               Junction(j.table, j.cons, k.cons, tuple((f, c) for c, f in j.cols),
                                        tuple((f, c) for c, f in k.cols))))
    rels += m2m
    inverse = [Rel(r.ftable, r.table, r.is_self, "o2m" if r.card == "m2o" else "o2o", r.cons,
                   tuple((f, c) for c, f in r.cols), r.ftable_is_view, r.table_is_view)
               for r in rels if r.card in ("m2o", "o2o")]
    rels += inverse
    # Computed relationships override the detected ones between the same table and a relation of
    # the function's name (PostgREST's getOverrideRelationshipsMap), so a function can replace an
    # ambiguous or unwanted foreign-key embed.
    computed = [Rel((tsch, tname), (fsch, fname), (tsch, tname) == (fsch, fname), "m2o" if one else "o2m",
                    "", (), (tsch, tname) in views, (fsch, fname) in views, None, (sch, name))
                for sch, name, tsch, tname, fsch, fname, one in computed_rows]
    overridden = {(r.table, r.function) for r in computed}
    rels = [r for r in rels if (r.table, r.ftable) not in overridden] + computed
    out: dict[QI, list[Rel]] = defaultdict(list)
    for r in rels:
        if r.table[0] in schemas and r.ftable[0] in schemas and \
                (r.junction is None or r.junction.table[0] in schemas):
            out[r.table].append(r)
    for r in out.values():
        # PostgREST's order (its derived Ord), which the ambiguity error's details follow.
        r.sort(key=lambda x: (x.ftable, x.is_self, _CARD_ORDER[x.card], x.cons, x.cols,
                              x.junction.table if x.junction else ("", "")))
    return dict(out)


def find(rels: dict[QI, list[Rel]], schema: str, origin: str, target: str,
         hint: str | None) -> Rel:
    """PostgREST's findRel: the one relationship `origin?select=target!hint(...)` names."""
    def fk_col(h, r):
        return len(r.cols) == 1 and r.card != "m2m" and r.cols[0][0] == h

    def fk_ref(h, r):
        return len(r.cols) == 1 and r.card != "m2m" and r.cols[0][1] == h

    def ok(r: Rel) -> bool:
        if r.function is not None:
            return target == r.function[1]
        if r.is_self:
            if hint is None:
                return (target == r.ftable[1] and r.card == "o2m") or (fk_col(target, r) and r.card == "m2o")
            return target == r.ftable[1] and r.card == "o2m" and fk_ref(hint, r)
        if hint is None:
            return (target == r.ftable[1]
                    or (r.card != "m2m" and r.cons == target and not r.ftable_is_view)
                    or (fk_col(target, r) and not r.ftable_is_view))
        return target == r.ftable[1] and (
            (r.card != "m2m" and r.cons == hint) or fk_col(hint, r) or fk_ref(hint, r)
            or (r.junction is not None and r.junction.table[1] == hint))

    found = [r for r in rels.get((schema, origin), []) if ok(r)]
    if len(found) == 1:
        return found[0]
    if not found:
        using = f"' using the hint '{hint}" if hint else ""
        raise ApiError(400, "PGRST200",
                       f"Could not find a relationship between '{origin}' and '{target}' in the schema cache",
                       f"Searched for a foreign key relationship between '{origin}' and '{target}{using}' "
                       f"in the schema '{schema}', but no matches were found.", None)
    raise ApiError(300, "PGRST201",
                   f"Could not embed because more than one relationship was found for '{origin}' and '{target}'",
                   [r.compressed() for r in found], f"Try changing '{target}' to one of the following: "
                   + ", ".join(r.hint() for r in found) + ". Find the desired relationship in the 'details' key.")
