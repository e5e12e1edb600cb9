"""Sources read from Cloudflare's API: the Workers Logs query and the DLQ (peek / snapshot)."""
