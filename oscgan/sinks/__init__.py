"""Frame outputs: one worker per sink with a latest-frame slot."""
