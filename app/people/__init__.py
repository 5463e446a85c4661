"""People: who is speaking, how they prove it, and where they are.

Owns identity and signed sessions (``identity``), signing in and out (``sessions``), the name
rule and name claims (``names``), accounts and their views and commands (``accounts``,
``account_views``, ``account_cli``), identity from a host application (``jwts``, ``oidc``),
publish tokens (``tokens``, ``tokens_cli``), presence (``presence``), typing signals
(``typing``), read positions, sidebars, unread and mention counts
(``reading``), direct messages (``direct``) and open streams per client address (``addresses``).

May import: ``app.rooms``, ``app.ops``, ``app.web``'s reply helpers (JSON or page), Flask and
its extensions. Not ``app.delivery``.
"""
