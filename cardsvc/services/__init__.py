"""Use cases. Each public function owns its transaction: it commits on success and leaves rollback to the caller
(the request's session is closed, which rolls back) when it raises a :mod:`cardsvc.errors` exception."""
