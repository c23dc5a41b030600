"""A local stand-in for hosted Supabase's gateway: PostgREST, Auth and Storage behaviour."""
