"""The local mail catcher: Auth's e-mail arrives over SMTP and is read back through a
Mailpit-compatible HTTP API (the one the Supabase CLI's own catcher offers on port 54324)."""

# `supabase start` serves the catcher's web page and API on 54324 and its SMTP on 54325
# ([local_smtp] port / smtp_port in config.toml); `koepon up` uses the same two ports.
MAIL_PORT = 54324
SMTP_PORT = 54325
