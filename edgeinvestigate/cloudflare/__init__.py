"""The Cloudflare API client (`CloudflareClient`) and its wire helpers."""
