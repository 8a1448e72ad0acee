"""Inputs: OSC, OSCQuery, MIDI, LFOs and analyzers write latest values onto the bus."""
