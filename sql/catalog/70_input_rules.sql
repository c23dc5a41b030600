-- Rules on what people type, enforced by triggers on the tables so that every path (every RPC,
-- every role, the service role, a future function) obeys them.
--
-- Names that lie: display names, VTuber names, gacha titles and item names are stored in Unicode
-- normal form C (so two spellings of one name are one string) and may not contain control or
-- format characters (Unicode categories Cc and Cf): zero-width spaces and joiners, bidi overrides
-- and isolates (which make "Koepon" display as something else), soft hyphens, tag characters.
-- Descriptions may hold line breaks and are not covered.
--
-- Prices: a 10-pull may not cost more than ten single pulls (price_ten <= 10 x price_single).

-- The Cc and Cf characters of Unicode 15 (U+0000 cannot occur in PostgreSQL text).
create or replace function private.drop_control_or_format_chars(p_value text) returns text
language sql immutable parallel safe
set search_path = ''
as $$
  select regexp_replace(p_value, '[\u0001-\u001F\u007F-\u009F\u00AD\u0600-\u0605\u061C\u06DD\u070F\u0890-\u0891\u08E2\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u206F\uFEFF\uFFF9-\uFFFB\U000110BD\U000110CD\U00013430-\U0001343F\U0001BCA0-\U0001BCA3\U0001D173-\U0001D17A\U000E0001\U000E0020-\U000E007F]', '', 'g')
$$;
comment on function private.drop_control_or_format_chars(text) is
  'The text without its Unicode control (Cc) and format (Cf) characters.';
revoke all on function private.drop_control_or_format_chars(text) from public;
grant execute on function private.drop_control_or_format_chars(text) to authenticated, service_role;

create or replace function private.has_control_or_format_char(p_value text) returns boolean
language sql immutable parallel safe
set search_path = ''
as $$
  select private.drop_control_or_format_chars(p_value) <> p_value
$$;
comment on function private.has_control_or_format_char(text) is
  'Whether a text holds a Unicode control (Cc) or format (Cf) character.';
revoke all on function private.has_control_or_format_char(text) from public;
grant execute on function private.has_control_or_format_char(text) to authenticated, service_role;

-- Trigger: TG_ARGV names the text columns of NEW to normalise (NFC) and check. One exception: the
-- profile that sign-up creates takes its display name from user-supplied metadata; there the
-- offending characters are dropped (empty -> 'fan') so that a sign-up never fails on them; every
-- later change of the name is refused like the others.
create or replace function private.clean_names() returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_col text;
  v_value text;
begin
  foreach v_col in array tg_argv loop
    v_value := to_jsonb(new) ->> v_col;
    continue when v_value is null;
    if private.has_control_or_format_char(v_value) then
      if tg_table_name = 'profiles' and tg_op = 'INSERT' then
        v_value := coalesce(nullif(btrim(private.drop_control_or_format_chars(v_value)), ''), 'fan');
      else
        raise exception using errcode = 'PT400', message = 'invalid_characters',
          detail = format('%s may not contain control or format characters (zero-width, bidi override, ...)',
                          v_col);
      end if;
    end if;
    new := jsonb_populate_record(new, jsonb_build_object(v_col, normalize(v_value, nfc)));
  end loop;
  return new;
end
$$;
comment on function private.clean_names() is
  'Trigger: the named columns in Unicode NFC, refusing control and format characters (invalid_characters).';
revoke all on function private.clean_names() from public;

create or replace function private.check_gacha_prices() returns trigger
language plpgsql
set search_path = ''
as $$
begin
  -- Checked when the prices change and when a gacha is published (a draft made before this
  -- rule cannot go on sale with them); a gacha on sale with older prices can still end.
  if (tg_op = 'INSERT' or new.price_single is distinct from old.price_single
      or new.price_ten is distinct from old.price_ten
      or (new.status = 'published' and old.status is distinct from 'published'))
     and new.price_ten > 10 * new.price_single then
    raise exception using errcode = 'PT400', message = 'invalid_price_ten',
      detail = format('a 10-pull may not cost more than ten single pulls: price_ten is at most %s',
                      10 * new.price_single);
  end if;
  return new;
end
$$;
comment on function private.check_gacha_prices() is
  'Trigger: refuses price_ten > 10 x price_single on insert, on a price change and on publishing.';
revoke all on function private.check_gacha_prices() from public;
