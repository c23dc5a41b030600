// Compiles only if the generated Database type lets supabase-js type these queries as hosted answers them.
import { createClient } from '@supabase/supabase-js'
import type { Database, Tables } from './database'

const sb = createClient<Database>('http://127.0.0.1:54321', 'anon-key')

export async function typed (): Promise<void> {
  const { data } = await sb.from('gachas').select('title, vtubers(name), gacha_items(name, rarity)').eq('status', 'published')
  if (data !== null) {
    const title: string | null = data[0].title
    const vtuber: string | null | undefined = data[0].vtubers?.name
    const items: Array<{ name: string | null, rarity: string | null }> = data[0].gacha_items
    console.log(title, vtuber, items)
  }
  const order = await sb.rpc('create_order', { p_gacha_id: 'g', p_pull_count: 1, p_idempotency_key: 'k' })
  const json: Database['public']['Functions']['create_order']['Returns'] | null = order.data
  const balances = await sb.rpc('get_medal_balances')
  const row: Tables<'gachas'> | null = null
  console.log(json, balances.data, row)
}
