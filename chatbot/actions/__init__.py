"""Actions: what the customer asks the assistant to do in the company's own systems (track, cancel, change an
order; send a password reset), declared in `[actions.NAME]` and run as one HTTP request each.

- `params`: finding a parameter's value in the customer's words;
- `templates`: the sandboxed Jinja2 templates the requests and replies are written with;
- `client`: the HTTP request, and what its answer means (done, not found, refused, failed);
- `router`: whether a message asks for an action, by its examples against the help centre;
- `desk`: the conversation around it: asking for what is missing, verifying the customer, confirming a write.
"""
