"""A bank: users and accounts, sign-up and transfers under locks, an event across keys."""
