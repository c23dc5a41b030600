"""The local Supabase stand-in: the API (REST, Auth, Storage), the fake payment providers, the
services `koepon up` runs, the demo seed's logins and ids, and the platform base SQL."""
