"""The HTTP API (`escalation-api`) and the agent console: a thin entry point over TicketClient."""
