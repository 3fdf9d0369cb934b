"""Test-only helpers shared by several test modules (fake exchange servers, data builders)."""
