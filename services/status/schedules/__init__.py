"""Recurring schedules: a cron expression or a period, a job template, and a firer that
submits one job per fire time, however many status replicas run (contract section 5)."""
