"""HTTP: predict endpoints in every protocol, health, and (later) admin and UI."""
