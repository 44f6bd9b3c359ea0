"""HTTP API: one router per area. Routes parse input, call one service function and shape the response."""
