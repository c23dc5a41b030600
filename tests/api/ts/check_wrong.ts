// Must NOT compile: a required RPC argument is missing.
import { createClient } from '@supabase/supabase-js'
import type { Database } from './database'

const sb = createClient<Database>('http://127.0.0.1:54321', 'anon-key')

export async function wrong (): Promise<void> {
  await sb.rpc('create_order', { p_gacha_id: 'g' })
}
