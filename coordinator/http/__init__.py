"""The HTTP API (`/api/v1/`) and the web console (`/`), served by `dormouse run` when
`[http] listen` is set. Handlers parse, call the same services as the CLI, and shape JSON."""
