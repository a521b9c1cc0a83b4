"""The ticket's search attributes (docs/contract.md#search-attributes): names and types, once."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

TICKET_STATUS = SearchAttributeKey.for_keyword("TicketStatus")
TICKET_PRIORITY = SearchAttributeKey.for_keyword("TicketPriority")
TICKET_TIER = SearchAttributeKey.for_keyword("TicketTier")
TICKET_ASSIGNEE = SearchAttributeKey.for_keyword("TicketAssignee")
TICKET_CUSTOMER = SearchAttributeKey.for_keyword("TicketCustomer")
SLA_BREACHED = SearchAttributeKey.for_bool("SlaBreached")
TICKET_SLA_DUE = SearchAttributeKey.for_datetime("TicketSlaDue")
TICKET_PATH = SearchAttributeKey.for_keyword("TicketPath")  # v2
TICKET_TAGS = SearchAttributeKey.for_keyword_list("TicketTags")  # v2

ALL_KEYS: tuple[SearchAttributeKey, ...] = (
    TICKET_STATUS,
    TICKET_PRIORITY,
    TICKET_TIER,
    TICKET_ASSIGNEE,
    TICKET_CUSTOMER,
    SLA_BREACHED,
    TICKET_SLA_DUE,
    TICKET_PATH,
    TICKET_TAGS,
)

# For `temporal server start-dev --search-attribute NAME=Type`.
CLI_TYPES = {
    "TicketStatus": "Keyword",
    "TicketPriority": "Keyword",
    "TicketTier": "Keyword",
    "TicketAssignee": "Keyword",
    "TicketCustomer": "Keyword",
    "SlaBreached": "Bool",
    "TicketSlaDue": "Datetime",
    "TicketPath": "Keyword",
    "TicketTags": "KeywordList",
}
