"""Users, roles, sign-up/log-in, sessions and guards."""
