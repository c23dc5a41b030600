// Compiles only if supabase-js finds the computed relationships in the generated Database type.
import { createClient } from '@supabase/supabase-js'
import type { Database } from './database'

const sb = createClient<Database>('http://127.0.0.1:54321', 'anon-key')

export async function typed (): Promise<void> {
  // to-one (setof ... rows 1, and a function without setof): an object or null
  const games = await sb.from('videogames').select('name, designer:computed_designers(name), d2:computed_designers_noset(id)')
  if (games.data !== null) {
    const designer: { name: string | null } | null = games.data[0].designer
    const id: number | null | undefined = games.data[0].d2?.id
    console.log(designer, id)
  }
  // to-many (setof, the default estimate of 1000 rows): an array
  const designers = await sb.from('designers').select('name, videogames:computed_videogames(name, designer_id)')
  if (designers.data !== null) {
    const played: Array<{ name: string | null, designer_id: number | null }> = designers.data[0].videogames
    console.log(played)
  }
}
