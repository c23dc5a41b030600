"""Supabase linter advice (splinter) as queries: each finding names the object and the rule."""

from __future__ import annotations

import psycopg

RULES: dict[str, str] = {
    "no_table_in_public": """
        select format('%s.%s', n.nspname, c.relname)
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relkind in ('r', 'p', 'm', 'f')
        order by 1""",
    "rls_enabled_on_app_tables": """
        select format('%s.%s', n.nspname, c.relname)
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'app' and c.relkind in ('r', 'p') and not c.relrowsecurity
        order by 1""",
    "definer_has_pinned_search_path": """
        select format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid))
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where p.prosecdef and n.nspname in ('public', 'app', 'private')
          and not exists (select 1 from unnest(coalesce(p.proconfig, '{}')) c
                          where c like 'search_path=%')
        order by 1""",
    "definer_not_executable_by_anon_or_public": """
        select format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid))
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where p.prosecdef and n.nspname in ('public', 'app', 'private')
          and (has_function_privilege('anon', p.oid, 'execute')
               or exists (select 1 from aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                          where a.grantee = 0 and a.privilege_type = 'EXECUTE'))
        order by 1""",
    # Postgres gives EXECUTE to PUBLIC on every new function, and `alter default privileges in
    # schema …` cannot take that away; so every function we own states its grants itself.
    "function_grants_are_explicit": """
        select format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid))
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname in ('public', 'app', 'private')
          and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e')
          and (p.proacl is null
               or exists (select 1 from aclexplode(p.proacl) a
                          where a.grantee = 0 and a.privilege_type = 'EXECUTE'))
        order by 1""",
    "public_function_has_comment": """
        select format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid))
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = 'public' and obj_description(p.oid, 'pg_proc') is null
          and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e')
        order by 1""",
    "view_is_security_invoker": """
        select format('%s.%s', n.nspname, c.relname)
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where c.relkind = 'v' and n.nspname in ('public', 'app', 'private')
          and not coalesce('security_invoker=true' = any (c.reloptions)
                           or 'security_invoker=on' = any (c.reloptions), false)
        order by 1""",
}


def findings(conn: psycopg.Connection) -> list[tuple[str, str]]:
    out = []
    for rule, query in RULES.items():
        for (obj,) in conn.execute(query).fetchall():
            out.append((rule, obj))
    return out
