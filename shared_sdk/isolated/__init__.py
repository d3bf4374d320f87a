"""Running a plugin in its own process: the child side (`child.serve`), the host side (`supervisor`), the
service broker between them (`broker`, `remote`) and the wire format (`wire`). See `wire` for the protocol."""
