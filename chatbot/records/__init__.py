"""What a turn leaves behind: the conversation store and the cost meter."""
