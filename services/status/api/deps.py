"""What the routes take from the application state (set up in the app's lifespan)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from faststream.rabbit import RabbitBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from services.status.projector import Projector
from shared.bus import Bus
from shared.placement.rules import Rules
from shared.queue_depth import QueueDepths
from shared.settings import StatusSettings


@dataclass
class Resources:
    settings: StatusSettings
    engine: AsyncEngine
    broker: RabbitBroker
    bus: Bus
    rules: Rules
    depths: QueueDepths
    projector: Projector


def resources(request: Request) -> Resources:
    res: Resources = request.app.state.resources
    return res


Res = Annotated[Resources, Depends(resources)]
