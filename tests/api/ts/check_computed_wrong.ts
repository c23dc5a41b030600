// Must NOT compile: the computed relationship's rows have no `title`.
import { createClient } from '@supabase/supabase-js'
import type { Database } from './database'

const sb = createClient<Database>('http://127.0.0.1:54321', 'anon-key')

export async function wrong (): Promise<void> {
  const games = await sb.from('videogames').select('name, designer:computed_designers(name)')
  const title: string | undefined = games.data?.[0].designer?.title
  console.log(title)
}
