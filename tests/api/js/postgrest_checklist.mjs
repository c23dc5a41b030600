// supabase-js's postgrest-js as the checklist: every public builder method driven once against the
// local API, each answer asserted (the same facts tests/api/test_conformance_*.py take from
// PostgREST's own test suite). Prints one line per check; exits non-zero on the first failure.
// Usage: node postgrest_checklist.mjs <api url> <anon key>
import assert from 'node:assert/strict'
// The PostgREST client supabase-js wraps (`supabase.from`, `.rpc`, `.schema` delegate to it), built
// with the headers createClient() sends; the realtime half of supabase-js is not needed here.
import { PostgrestClient } from '@supabase/postgrest-js'

const [url, key] = process.argv.slice(2)
const sb = new PostgrestClient(`${url}/rest/v1`, { headers: { apikey: key, Authorization: `Bearer ${key}` } })
let passed = 0

async function check (name, query, expected, { count, status, code, raw } = {}) {
  const res = await query
  if (code) {
    assert.equal(res.error?.code, code, `${name}: ${JSON.stringify(res)}`)
  } else {
    assert.equal(res.error, null, `${name}: ${JSON.stringify(res.error)}`)
    assert.deepEqual(raw ? res.data : res.data, expected, name)
  }
  if (count !== undefined) assert.equal(res.count, count, `${name} count`)
  if (status !== undefined) assert.equal(res.status, status, `${name} status`)
  passed += 1
  console.log(`ok ${name}`)
}

const ids = (q) => q.then(r => ({ ...r, data: r.data && r.data.map(x => x.id) }))
const p = () => sb.from('projects').select('id').order('id')

await check('select embed + count', sb.from('projects').select('id, name, clients(name)', { count: 'exact' }).eq('id', 3),
  [{ id: 3, name: 'IOS', clients: { name: 'Apple' } }], { count: 1 })
await check('select spread + inner', sb.from('projects').select('id, ...clients!inner(client:name)').eq('clients.name', 'Apple').order('id'),
  [{ id: 3, client: 'Apple' }, { id: 4, client: 'Apple' }])
await check('head count', sb.from('projects').select('*', { count: 'exact', head: true }), null, { count: 5 })
await check('eq', ids(p().eq('client_id', 1)), [1, 2])
await check('neq', ids(p().neq('client_id', 1)), [3, 4])
await check('gt', ids(p().gt('id', 3)), [4, 5])
await check('gte', ids(p().gte('id', 4)), [4, 5])
await check('lt', ids(p().lt('id', 2)), [1])
await check('lte', ids(p().lte('id', 2)), [1, 2])
await check('like', ids(p().like('name', 'Windows%')), [1, 2])
await check('ilike', ids(p().ilike('name', 'ios')), [3])
await check('likeAnyOf', ids(sb.from('articles').select('id').likeAnyOf('body', ['%plan%', '%brain%']).order('id')), [1, 2])
await check('likeAllOf', ids(sb.from('articles').select('id').likeAllOf('body', ['%plan%', '%greatness%'])), [1])
await check('ilikeAnyOf', ids(sb.from('articles').select('id').ilikeAnyOf('body', ['%STOP%', '%FEZ%']).order('id')), [2, 3])
await check('ilikeAllOf', ids(sb.from('articles').select('id').ilikeAllOf('body', ['%IT%', '%FEZ%'])), [3])
await check('is', ids(p().is('client_id', null)), [5])
await check('in', ids(p().in('id', [1, 4])), [1, 4])
await check('contains array', ids(sb.from('complex_items').select('id').contains('arr_data', [2]).order('id')), [2, 3])
await check('contains json', ids(sb.from('complex_items').select('id').contains('settings', { foo: { int: 1 } }).order('id')), [1, 2, 3])
await check('containedBy', ids(sb.from('complex_items').select('id').containedBy('arr_data', [1, 2, 4]).order('id')), [1, 2])
await check('overlaps', ids(sb.from('complex_items').select('id').overlaps('arr_data', [3, 9])), [3])
const r = () => sb.from('ranges').select('id').order('id')
await check('rangeLt', ids(r().rangeLt('range', '[6,8)')), [1])
await check('rangeGt', ids(r().rangeGt('range', '[6,8)')), [4])
await check('rangeLte', ids(r().rangeLte('range', '[4,6)')), [1])
await check('rangeGte', ids(r().rangeGte('range', '[4,6)')), [3, 4])
await check('rangeAdjacent', ids(r().rangeAdjacent('range', '[13,15)')), [4])
const vec = 'text_search_vector'
const fat = [{ [vec]: "'ate':3 'cat':2 'fat':1 'rat':4" }]
await check('textSearch', sb.from('tsearch').select(vec).textSearch(vec, 'fat & rats'), fat)
await check('textSearch plain', sb.from('tsearch').select(vec).textSearch(vec, 'The Fat Rats', { type: 'plain' }), fat)
await check('textSearch phrase', sb.from('tsearch').select(vec).textSearch(vec, 'The Fat Cats', { type: 'phrase', config: 'english' }), fat)
await check('textSearch websearch', sb.from('tsearch').select(vec).textSearch(vec, '"fat cats"', { type: 'websearch' }), fat)
await check('match', ids(sb.from('projects').select('id').match({ client_id: 2, name: 'OSX' })), [4])
await check('not', ids(p().not('client_id', 'is', null)), [1, 2, 3, 4])
await check('or', ids(p().or('id.eq.1,name.eq.OSX')), [1, 4])
await check('filter', ids(p().filter('name', 'in', '("IOS","OSX")')), [3, 4])
await check('json path', sb.from('complex_items').select('bar:settings->foo->>bar').eq('id', 1), [{ bar: 'baz' }])
await check('order desc + limit', ids(sb.from('projects').select('id').order('id', { ascending: false }).limit(2)), [5, 4])
await check('range', ids(p().range(1, 2)), [2, 3])
await check('referenced order + limit', sb.from('clients').select('id, projects(id)').order('id')
  .order('id', { referencedTable: 'projects', ascending: false }).limit(1, { referencedTable: 'projects' }),
[{ id: 1, projects: [{ id: 2 }] }, { id: 2, projects: [{ id: 4 }] }])
await check('single', sb.from('projects').select('id, name').eq('id', 1).single(), { id: 1, name: 'Windows 7' })
await check('single of many', sb.from('projects').select('id').single(), null, { code: 'PGRST116' })
await check('maybeSingle', sb.from('projects').select('id').eq('id', 99).maybeSingle(), null)
await check('csv', sb.from('projects').select('id,name').in('id', [1, 2]).order('id').csv(), 'id,name\n1,"Windows 7"\n2,"Windows 10"')
await check('explain (off on hosted)', sb.from('projects').select('id').explain(), null, { code: 'PGRST107' })
await check('schema', sb.schema('v2').from('parents').select('name').eq('id', 1), [{ name: 'parent v2-1' }])
await check('rpc + filters', ids(sb.rpc('getallprojects').select('id').gt('id', 3).order('id')), [4, 5])
await check('rpc get + count', sb.rpc('getallprojects', {}, { get: true, count: 'exact' }).select('id').lt('id', 3).order('id'),
  [{ id: 1 }, { id: 2 }], { count: 2 })
await check('insert', sb.from('tiobe_pls').insert({ name: 'Elixir', rank: 40 }).select(), [{ name: 'Elixir', rank: 40 }], { status: 201 })
await check('insert bulk missing=null', sb.from('tiobe_pls').insert([{ name: 'Nim', rank: 41 }, { name: 'Odin' }]).select(),
  [{ name: 'Nim', rank: 41 }, { name: 'Odin', rank: null }])
await check('insert defaultToNull false', sb.from('with_defaults').insert([{ id: 10 }, { id: 11, label: 'x' }], { defaultToNull: false }).select(),
  [{ id: 10, label: 'fallback', note: null }, { id: 11, label: 'x', note: null }])
await check('upsert', sb.from('tiobe_pls').upsert({ name: 'Elixir', rank: 39 }).select(), [{ name: 'Elixir', rank: 39 }], { status: 200 })
await check('upsert ignoreDuplicates', sb.from('tiobe_pls').upsert({ name: 'Elixir', rank: 1 }, { ignoreDuplicates: true }).select(), [])
await check('upsert onConflict', sb.from('tiobe_pls').upsert({ name: 'Elixir', rank: 38 }, { onConflict: 'name' }).select(), [{ name: 'Elixir', rank: 38 }])
await check('update', sb.from('tiobe_pls').update({ rank: 37 }).eq('name', 'Elixir').select(), [{ name: 'Elixir', rank: 37 }])
await check('update minimal', sb.from('tiobe_pls').update({ rank: 0 }).eq('name', 'Odin'), null, { status: 204 })
await check('maxAffected', sb.from('tiobe_pls').delete().gt('rank', 0).maxAffected(1), null, { code: 'PGRST124' })
await check('delete + count', sb.from('tiobe_pls').delete({ count: 'exact' }).in('name', ['Elixir', 'Nim', 'Odin']).select('name').order('name'),
  [{ name: 'Elixir' }, { name: 'Nim' }, { name: 'Odin' }], { count: 3 })
await check('setHeader', sb.from('projects').select('id').eq('id', 1).setHeader('Accept', 'text/unknowntype'), null, { code: 'PGRST107' })
let thrown = null
try { await sb.from('nope').select().throwOnError() } catch (e) { thrown = e }
assert.equal(thrown?.code, 'PGRST205', 'throwOnError')
passed += 1
console.log('ok throwOnError')
console.log(`passed ${passed}`)
