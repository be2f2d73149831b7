"""`hybridq link setup|status|remove`: the hybrid link between the private site's broker and
the public site's broker, made of RabbitMQ dynamic shovels (contract §7, docs/hybrid-link.md).

Every shovel is defined on the public broker: RabbitMQ 3.10 does not restart a dynamic
shovel whose remote broker closed its connection on shutdown, but it starts the shovels of
a node whenever that node starts, so the site that comes and goes (the public cloud) carries
them. Each moves messages with `ack-mode: on-confirm`: a message leaves its source queue
only once the other broker has confirmed it, so a cut link loses nothing. Jobs wait on the
private side while the link is down; what public workers publish waits on the public side.
`setup` restarts any shovel it finds terminated (e.g. after the private broker restarted).

Over the internet the link runs over TLS (docs/tls.md): with an `amqps://` private URL the
shovels' URI carries the CA, certificate and key as paths on the PUBLIC broker's filesystem
(`--shovel-ca-file` ...: the shovels run there) and verifies the private broker's chain and
host name (`verify=verify_peer`, `server_name_indication`). The command's own connections
(declaring the topology, the management API) verify with `--ca-file` ... on this machine.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, unquote, urlsplit

import httpx
import typer
from faststream.rabbit import RabbitExchange, RabbitQueue
from yarl import URL

from hybridq_cli.app import app, fail
from shared import tls, topology
from shared.bus import make_broker
from shared.contracts import batches
from shared.contracts.jobs import Site

link_app = typer.Typer(help="The hybrid link to the public site's broker.", no_args_is_help=True)
app.add_typer(link_app, name="link")

PRIVATE, PUBLIC = "private", "public"
PREFIX = "hybridq-link-"
WORKER_EVENT_KEYS = (
    batches.routing_key(Site.PUBLIC.value),
    "worker.#",
    # a v1.1 public worker's single events, during a rolling upgrade
    "job.started",
    "job.progress",
    "job.succeeded",
    "job.failed",
    "job.dead_lettered",
)
"""What public workers publish (contract §3.2); the status service's batches (with the
cancellations) flow the other way, so the two directions never feed each other."""


def _link_queue(name: str, kind: topology.WorkQueueType) -> RabbitQueue:
    queue: RabbitQueue = RabbitQueue(name, durable=True)
    return topology.for_kind(queue, kind)


@dataclass(frozen=True)
class Shovel:
    """One direction of the link: a queue on one side into an exchange on the other."""

    name: str
    source: str  # PRIVATE or PUBLIC
    queue: str
    exchange: str
    routing_key: str | None  # None: keep each message's own routing key

    @property
    def destination(self) -> str:
        return PUBLIC if self.source == PRIVATE else PRIVATE


SHOVELS = (
    # placed public jobs and cancellations, private -> public
    Shovel(f"{PREFIX}jobs", PRIVATE, "jobs.public", topology.DISPATCH.name, Site.PUBLIC.value),
    Shovel(
        f"{PREFIX}cancellations",
        PRIVATE,
        "jobs.link.cancellations",
        "",
        topology.CANCELLATIONS.name,
    ),
    # what public workers publish, public -> private
    Shovel(f"{PREFIX}events", PUBLIC, "jobs.link.events", topology.EVENTS.name, None),
    Shovel(
        f"{PREFIX}dead-letters",
        PUBLIC,
        topology.DEAD_LETTER_QUEUE.name,
        topology.DEAD_LETTER_EXCHANGE.name,
        None,
    ),
    Shovel(f"{PREFIX}child-jobs", PUBLIC, "jobs.link.intake", topology.INTAKE.name, None),
    Shovel(
        f"{PREFIX}retries", PUBLIC, topology.ROUTER_DUE.name, topology.DELAY.name, topology.DUE_KEY
    ),
)


LinkBinding = tuple[RabbitQueue, RabbitExchange, str]


def _link_bindings(side: str, kind: topology.WorkQueueType) -> list[LinkBinding]:
    """The link's own queues on `side`, each with the (exchange, routing key)s it takes.

    Cancellations and the public workers' barrier markers share one FIFO queue and one
    shovel (private -> public), so a marker read back proves every cancellation before it
    arrived (shared/cancellations.py). That shovel publishes straight into the public
    cancellations stream (`dest-queue`), so markers never loop back."""
    events, sync = topology.EVENTS, topology.LINK_SYNC_KEY
    if side == PRIVATE:
        outbound = _link_queue("jobs.link.cancellations", kind)
        return [
            (outbound, events, topology.STATUS_EVENTS_KEY),
            (outbound, events, topology.CANCELLED_KEY),  # a v1.1 status service's
            (outbound, events, sync),
        ]
    return [
        *((_link_queue("jobs.link.events", kind), events, key) for key in WORKER_EVENT_KEYS),
        (_link_queue("jobs.link.events", kind), events, sync),
        (_link_queue("jobs.link.intake", kind), topology.INTAKE, topology.SUBMITTED_KEY),
    ]


@dataclass(frozen=True)
class LocalTLS:
    """What this command verifies the brokers with (files on this machine): the CA for
    `amqps://` and `https://` admin URLs, and a client certificate and key."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def amqp_url(self, url: str) -> str:
        return tls.with_files(url, ca=self.ca, cert=self.cert, key=self.key)

    def http_verify(self) -> ssl.SSLContext | bool:
        if self.ca is None and self.cert is None:
            return True  # httpx's default: the system's CAs
        context = ssl.create_default_context(cafile=self.ca)
        if self.cert is not None:
            context.load_cert_chain(self.cert, self.key)
        return context


@dataclass(frozen=True)
class ShovelTLS:
    """The TLS files of the shovels' connection to the private broker: paths on the PUBLIC
    broker's filesystem (the shovels run there), not on this machine."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None

    def uri(self, amqp_url: str) -> str:
        """The private broker's URI for a shovel: an `amqps://` one verifies the broker's
        chain (`cacertfile`, `verify_peer`) and host name (`server_name_indication`), and
        presents the client certificate when given. This command's own TLS query
        parameters (aiormq's, paths on this machine) are not the broker's: left out."""
        url = URL(amqp_url)
        url = url.with_query({k: v for k, v in url.query.items() if k not in _LOCAL_TLS})
        if not tls.is_tls(url):
            return str(url)
        if self.ca is None:
            fail(
                "the private URL is amqps://: give --shovel-ca-file, the CA that signed the "
                "private broker's certificate, as a path on the PUBLIC broker's filesystem"
            )
        query = {
            "cacertfile": self.ca,
            **({"certfile": self.cert} if self.cert else {}),
            **({"keyfile": self.key} if self.key else {}),
            "verify": "verify_peer",
            "server_name_indication": url.host or "",
        }
        return str(url.update_query(query))


_LOCAL_TLS = ("cafile", "capath", "cadata", "certfile", "keyfile", "no_verify_ssl")
"""aiormq's own TLS query parameters: this command's, never a shovel's."""


@dataclass(frozen=True)
class Side:
    amqp_url: str
    admin: str
    vhost: str
    local: LocalTLS = LocalTLS()

    @classmethod
    def parse(cls, amqp_url: str, admin: str | None, local: LocalTLS | None = None) -> Side:
        parts = urlsplit(amqp_url)
        if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
            fail(f"not an AMQP URL: {tls.shown(amqp_url)!r}")
        vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        if admin is None:
            user, password = parts.username or "guest", parts.password or "guest"
            admin = f"http://{user}:{password}@{parts.hostname}:15672"
        return cls(amqp_url, admin.rstrip("/"), vhost, local or LocalTLS())

    def http(self) -> httpx.Client:
        parts = urlsplit(self.admin)
        auth = (unquote(parts.username or ""), unquote(parts.password or ""))
        base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}{parts.path}"
        return httpx.Client(base_url=base, auth=auth, timeout=10, verify=self.local.http_verify())

    @property
    def quoted_vhost(self) -> str:
        return quote(self.vhost, safe="")


async def _declare(side: Side, name: str, kind: topology.WorkQueueType) -> None:
    """The project's own topology (as the services declare it) plus the link's queues."""
    broker = make_broker(side.local.amqp_url(side.amqp_url), 1)
    try:
        await broker.connect()
        own = topology.status_bindings if name == PRIVATE else topology.worker_bindings
        await topology.declare(broker, own(kind))
        for queue, source, key in _link_bindings(name, kind):
            exchange = await broker.declare_exchange(source)
            declared = await broker.declare_queue(queue)
            await declared.bind(exchange, routing_key=key)
    finally:
        await broker.stop()


def _uri(side: str, sides: dict[str, Side], shovel_tls: ShovelTLS) -> str:
    """The shovels run on the public broker: its own end is a direct (in-node) connection;
    the private end is the `--private` URL, over verified TLS when it is `amqps://`."""
    if side == PUBLIC:  # no host: in-node, as the dummy user; the path names the vhost
        return f"amqp:///{sides[PUBLIC].quoted_vhost}"
    return shovel_tls.uri(sides[side].amqp_url)


def _shovel_value(
    shovel: Shovel, sides: dict[str, Side], reconnect: int, shovel_tls: ShovelTLS = ShovelTLS()
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "src-protocol": "amqp091",
        "src-uri": _uri(shovel.source, sides, shovel_tls),
        "src-queue": shovel.queue,
        "src-prefetch-count": 100,
        "dest-protocol": "amqp091",
        "dest-uri": _uri(shovel.destination, sides, shovel_tls),
        **(
            {"dest-queue": shovel.routing_key}
            if shovel.exchange == ""
            else {"dest-exchange": shovel.exchange}
        ),
        "ack-mode": "on-confirm",
        "src-delete-after": "never",
        "reconnect-delay": reconnect,
    }
    if shovel.routing_key is not None and shovel.exchange:
        value["dest-exchange-key"] = shovel.routing_key
    return value


def _shovels(http: httpx.Client, side: Side) -> dict[str, str]:
    """The state of each shovel on the public broker; a clear failure without the plugin."""
    try:
        response = http.get(f"/api/shovels/{side.quoted_vhost}")
    except httpx.HTTPError as exc:
        fail(f"cannot reach the public broker's management API at {tls.shown(side.admin)}: {exc}")
    if response.status_code == 404:
        fail(
            "the public broker has no shovel plugin: run `rabbitmq-plugins enable "
            "rabbitmq_shovel rabbitmq_shovel_management` on it (the link is made of shovels)"
        )
    if response.status_code in (401, 403):
        fail(
            f"the public broker's management API refused {tls.shown(side.admin)}: "
            f"{response.status_code}"
        )
    response.raise_for_status()
    return {s["name"]: s.get("state", "unknown") for s in response.json()}


PrivateOption = Annotated[str, typer.Option("--private", help="private broker AMQP URL")]
PublicOption = Annotated[str, typer.Option("--public", help="public broker AMQP URL")]
PrivateAdmin = Annotated[
    str | None, typer.Option("--private-admin", help="private management API base URL")
]
PublicAdmin = Annotated[
    str | None, typer.Option("--public-admin", help="public management API base URL")
]
KindOption = Annotated[
    topology.WorkQueueType,
    typer.Option("--queue-type", envvar="WORK_QUEUE_TYPE", help="as the services' setting"),
]
CaOption = Annotated[
    Path | None,
    typer.Option(
        "--ca-file",
        envvar="AMQP_CA_FILE",
        help="this machine: the CA this command verifies amqps:// and https:// brokers with",
    ),
]
CertOption = Annotated[
    Path | None,
    typer.Option("--cert-file", envvar="AMQP_CERT_FILE", help="this machine: client certificate"),
]
KeyOption = Annotated[
    Path | None,
    typer.Option("--key-file", envvar="AMQP_KEY_FILE", help="this machine: client key"),
]
ShovelCaOption = Annotated[
    str | None,
    typer.Option(
        "--shovel-ca-file",
        help="path ON THE PUBLIC BROKER (the shovels run there) of the CA that signed the "
        "private broker's certificate; needed when --private is amqps://",
    ),
]
ShovelCertOption = Annotated[
    str | None,
    typer.Option(
        "--shovel-cert-file",
        help="path ON THE PUBLIC BROKER of the shovels' client certificate",
    ),
]
ShovelKeyOption = Annotated[
    str | None,
    typer.Option("--shovel-key-file", help="path ON THE PUBLIC BROKER of the shovels' key"),
]


def _sides(
    private: str,
    public: str,
    private_admin: str | None,
    public_admin: str | None,
    local: LocalTLS | None = None,
) -> dict[str, Side]:
    return {
        PRIVATE: Side.parse(private, private_admin, local),
        PUBLIC: Side.parse(public, public_admin, local),
    }


SETUP_HELP = (
    "Connect the two brokers (idempotent: running it again changes nothing).\n\n"
    "With an amqps:// --private URL the shovels verify the private broker over TLS with the "
    "--shovel-* files, which are paths on the PUBLIC broker's own filesystem (the shovels run "
    "there); --ca-file, --cert-file and --key-file are this machine's, for this command's own "
    "connections. Plain amqp:// between the sites is for a laboratory only (docs/tls.md)."
)


@link_app.command("setup", help=SETUP_HELP)
def setup(
    private: PrivateOption,
    public: PublicOption,
    private_admin: PrivateAdmin = None,
    public_admin: PublicAdmin = None,
    queue_type: KindOption = topology.WorkQueueType.CLASSIC,
    reconnect_seconds: Annotated[
        int, typer.Option(min=1, help="shovel reconnect delay (whole seconds)")
    ] = 1,
    ca_file: CaOption = None,
    cert_file: CertOption = None,
    key_file: KeyOption = None,
    shovel_ca_file: ShovelCaOption = None,
    shovel_cert_file: ShovelCertOption = None,
    shovel_key_file: ShovelKeyOption = None,
) -> None:
    """Set the link up (the help text is SETUP_HELP)."""
    local = LocalTLS(ca_file, cert_file, key_file)
    sides = _sides(private, public, private_admin, public_admin, local)
    shovel_tls = ShovelTLS(shovel_ca_file, shovel_cert_file, shovel_key_file)
    shovel_tls.uri(private)  # a missing --shovel-ca-file fails before anything is changed
    host = sides[PUBLIC]
    with host.http() as http:
        _shovels(http, host)
        for name, side in sides.items():
            try:
                asyncio.run(_declare(side, name, queue_type))
            except Exception as exc:
                fail(f"cannot declare the topology on the {name} broker: {exc}")
        for shovel in SHOVELS:
            response = http.put(
                f"/api/parameters/shovel/{host.quoted_vhost}/{shovel.name}",
                json={"value": _shovel_value(shovel, sides, reconnect_seconds, shovel_tls)},
            )
            if response.status_code >= 400:
                fail(f"cannot define shovel {shovel.name}: {response.status_code} {response.text}")
        for name, state in _shovels(http, host).items():
            if name.startswith(PREFIX) and state == "terminated":
                http.delete(f"/api/shovels/vhost/{host.quoted_vhost}/{name}/restart")
    _warn_without_impersonator(sides[PRIVATE])
    if not tls.is_tls(private):
        typer.echo(
            "warning: the link runs over plain AMQP (amqp://): for a laboratory only; across "
            "the internet use an amqps:// --private URL (docs/tls.md)",
            err=True,
        )
    over = "verified TLS" if tls.is_tls(private) else "plain AMQP"
    typer.echo(f"link set up: {len(SHOVELS)} shovels on the public broker, over {over}")


def _warn_without_impersonator(side: Side) -> None:
    """The link re-publishes public workers' messages into the private broker under the
    `--private` URL's user, keeping their `user_id`: RabbitMQ refuses that unless the user
    is the same or has the `impersonator` tag (docs/hybrid-link.md, broker users)."""
    user = unquote(urlsplit(side.amqp_url).username or "guest")
    try:
        with side.http() as http:
            got = http.get(f"/api/users/{quote(user, safe='')}")
    except httpx.HTTPError:
        return
    if got.status_code != 200:
        return  # the admin URL may not read users: nothing to say
    tags = got.json().get("tags", [])
    tags = tags.split(",") if isinstance(tags, str) else tags
    if "impersonator" not in tags:
        typer.echo(
            f"warning: the private link user {user!r} has no 'impersonator' tag: messages "
            "from public workers with another user_id will be refused by the private "
            f"broker (rabbitmqctl set_user_tags {user} impersonator ...)",
            err=True,
        )


def _depth(side: Side, queue: str) -> str:
    try:
        with side.http() as http:
            got = http.get(f"/api/queues/{side.quoted_vhost}/{quote(queue, safe='')}")
    except httpx.HTTPError:
        return "unreachable"
    if got.status_code != 200:
        return "unreachable" if got.status_code >= 500 else "missing"
    return str(got.json().get("messages", 0))


@link_app.command("status")
def status(
    private: PrivateOption,
    public: PublicOption,
    private_admin: PrivateAdmin = None,
    public_admin: PublicAdmin = None,
    ca_file: CaOption = None,
    cert_file: CertOption = None,
    key_file: KeyOption = None,
) -> None:
    """Each shovel's state and the messages waiting for it; exit 1 when one is not running."""
    sides = _sides(
        private, public, private_admin, public_admin, LocalTLS(ca_file, cert_file, key_file)
    )
    try:
        with sides[PUBLIC].http() as http:
            running = _shovels(http, sides[PUBLIC])
    except typer.Exit:
        running = {s.name: "unreachable" for s in SHOVELS}  # the public site is cut off
    down = 0
    for shovel in SHOVELS:
        state = running.get(shovel.name, "missing")
        down += state != "running"
        waiting = _depth(sides[shovel.source], shovel.queue)
        typer.echo(
            f"{shovel.name:28} {state:11} {shovel.source}:{shovel.queue} -> "
            f"{shovel.destination}:{shovel.exchange}  waiting {waiting}"
        )
    if down:
        fail(f"{down} of {len(SHOVELS)} link shovels are not running")


@link_app.command("remove")
def remove(
    private: PrivateOption,
    public: PublicOption,
    private_admin: PrivateAdmin = None,
    public_admin: PublicAdmin = None,
    ca_file: CaOption = None,
    cert_file: CertOption = None,
    key_file: KeyOption = None,
) -> None:
    """Delete the link's shovels. Its queues stay (they may hold messages)."""
    sides = _sides(
        private, public, private_admin, public_admin, LocalTLS(ca_file, cert_file, key_file)
    )
    host = sides[PUBLIC]
    with host.http() as http:
        _shovels(http, host)
        for shovel in SHOVELS:
            response = http.delete(f"/api/parameters/shovel/{host.quoted_vhost}/{shovel.name}")
            if response.status_code not in (204, 404):
                fail(f"cannot delete shovel {shovel.name}: {response.status_code}")
    typer.echo("link removed (its queues and the messages in them stay)")
