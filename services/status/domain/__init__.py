"""What the status service knows, as pure code: no database, no broker, no clock of its own.

The job view and its fold (`views`, `projection`), dead letters and what they end
(`dead_letters`), who may report what (`arrivals`), sagas (`saga`), schedules' timing
(`schedules`), redrives (`redrive`) and every deterministic id (`ids`).
"""
