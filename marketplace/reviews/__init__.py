"""Reviews: only from completed lessons, one per booking, a tutor reply, admin hiding."""
