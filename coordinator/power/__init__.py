"""Power: which nodes sleep and wake (pure policy), how they are woken, what energy costs."""
