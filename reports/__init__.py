"""Read-side reports: SLA figures, their terminal and HTML renderings, ticket timelines."""
