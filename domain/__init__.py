"""Pure ticket domain: commands, events, SLA policy, calendars and the decider. No I/O, no clock."""
