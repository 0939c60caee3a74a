"""The agent daemon: a sampling task feeding the spool, and an MQTT task draining it.

Sampling never waits for the broker: while it is unreachable samples go on into the spool,
and the MQTT task reconnects (exponential backoff, full jitter, forever) and replays them in
order. Only acknowledged batches are marked sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence

import aiomqtt

from agent.logonce import LogOnce
from agent.runner import Runner
from agent.samplers.base import Sampler
from agent.sampling import take_sample
from agent.settings import AgentConfig
from agent.sleeper import Sleeper, SleepFailed
from agent.spool import Spool
from shared.backoff import Backoff
from shared.clock import Clock
from shared.codec import decode, encode
from shared.edge.notify import Notifier
from shared.edge.tasks import Stopped, Stopping
from shared.errors import KEY_REASONS, CommandRejected, DecodeError, NoCommandKey
from shared.messages import (
    CancelJob,
    Command,
    Event,
    FetchOutput,
    Hello,
    Resend,
    RunJob,
    Sleep,
    Status,
)
from shared.signing import Verifier
from shared.topics import Kind, topic

log = logging.getLogger(__name__)
MAX_GONE = 64  # seqs_gone events answering one resend


class GoingToSleep(Exception):
    """Raised in the command task to leave the broker session before the host sleeps."""


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        *,
        samplers: Sequence[Sampler],
        spool: Spool,
        clock: Clock,
        notifier: Notifier,
        verifier: Verifier | None,
        hello: Callable[[], Hello],
        runner: Runner,
        sleeper: Sleeper,
    ) -> None:
        self.config, self.spool, self.clock = config, spool, clock
        self._samplers, self._notifier, self._verifier = samplers, notifier, verifier
        self._hello = hello
        self.runner = runner
        self._sleeper = sleeper
        self.awake = asyncio.Event()
        self.awake.set()
        self._client: aiomqtt.Client | None = None
        self._connected: bool | None = None
        self._once = LogOnce(log)
        self.refused: Counter[str] = Counter()
        self._stopping = Stopping()

    async def run(self, stop: asyncio.Event) -> None:
        """Sample and publish until `stop` is set, then say offline and return."""
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(self._sample_loop(), name="sample"),
                group.create_task(self._mqtt_loop(), name="mqtt"),
                group.create_task(self.runner.watch(), name="jobs"),
            ]
            await stop.wait()
            log.info("stopping: %d jobs keep running under their wrappers", self.runner.count())
            self._notifier.stopping()
            await self._say_offline()
            self._stopping.request()  # after `offline` is out: the loops end at their next turn
            for task in tasks:
                task.cancel()

    async def _sample_loop(self) -> None:
        deadline = time.monotonic()
        while not self._stopping.requested:
            if not self.awake.is_set():  # a sleeping host takes no samples
                self._notifier.watchdog()
                await asyncio.sleep(self.config.interval)
                continue
            sample = take_sample(self._samplers, self.clock.now())
            self.spool.append(sample)
            self.runner.on_sample(sample)
            self._notifier.ready()
            self._notifier.watchdog()
            deadline = max(deadline + self.config.interval, time.monotonic())
            await asyncio.sleep(deadline - time.monotonic())

    async def _mqtt_loop(self) -> None:
        backoff = Backoff()
        while True:
            going_to_sleep = False
            try:
                async with self._new_client() as client:
                    self._client = client
                    self._set_connected(True, "")
                    backoff.reset()
                    await self._announce(client)
                    async with asyncio.TaskGroup() as group:
                        group.create_task(self._publish_loop(client), name="publish")
                        group.create_task(self._command_loop(client), name="commands")
                        group.create_task(self._event_loop(client), name="events")
            except* aiomqtt.MqttError as errors:
                self._set_connected(False, str(errors.exceptions[0]))
            except* GoingToSleep:
                going_to_sleep = True
            except* Stopped:
                pass  # returns below
            finally:
                self._client = None
            if self._stopping.requested:  # a disconnect that failed while cancelled: no retry
                return
            if going_to_sleep:
                await self._sleep()
                continue
            await asyncio.sleep(backoff.next_delay())

    def _set_connected(self, connected: bool, reason: str) -> None:
        """Log state changes, not every failed attempt."""
        if connected != self._connected:
            if connected:
                log.info("connected to %s as %s", self.config.broker, self.config.node)
            else:
                log.warning(
                    "broker %s unreachable (%s): spooling to %s until it is back",
                    self.config.broker,
                    reason,
                    self.spool.path,
                )
        self._connected = connected

    def _new_client(self) -> aiomqtt.Client:
        broker, node = self.config.broker, self.config.node
        offline = Status(node=node, ts=self.clock.now(), state="offline")
        return aiomqtt.Client(
            **broker.client_kwargs(self.config.mqtt),
            identifier=node,
            clean_session=False,
            keepalive=30,
            timeout=10,
            will=aiomqtt.Will(topic(node, Kind.STATUS), encode(offline), qos=1, retain=True),
        )

    async def _announce(self, client: aiomqtt.Client) -> None:
        node = self.config.node
        await client.publish(topic(node, Kind.HELLO), encode(self._hello()), qos=1, retain=True)
        online = Status(node=node, ts=self.clock.now(), state="online")
        await client.publish(topic(node, Kind.STATUS), encode(online), qos=1, retain=True)
        await client.subscribe(topic(node, Kind.CMD), qos=1)

    async def _publish_loop(self, client: aiomqtt.Client) -> None:
        telemetry = topic(self.config.node, Kind.TELEMETRY)
        while True:
            while self.awake.is_set() and (batch := self.spool.next_unsent()) is not None:
                await client.publish(telemetry, batch.payload(), qos=1)  # returns on PUBACK
                self.spool.mark_sent(batch)
                self._stopping.check()  # a cancel the publish swallowed (Python 3.11)
            await asyncio.sleep(self.config.publish_interval)

    async def _event_loop(self, client: aiomqtt.Client) -> None:
        """Job events, in order; each leaves the outbox only once the broker has it."""
        events = topic(self.config.node, Kind.EVENTS)
        self.runner.resync()
        outbox = self.runner.outbox
        while True:
            while outbox:
                await client.publish(events, encode(outbox[0]), qos=1)
                self.runner.delivered(outbox.popleft())
            self._stopping.check()  # before waiting, maybe long, for the next event
            self.runner.queued.clear()
            await self.runner.queued.wait()

    async def _command_loop(self, client: aiomqtt.Client) -> None:
        own = topic(self.config.node, Kind.CMD)
        async for message in client.messages:
            if not message.topic.matches(own):
                self._not_subscribed(message.topic.value)
                continue
            command = self._accept(message.payload)
            if isinstance(command, Event):
                await client.publish(topic(self.config.node, Kind.EVENTS), encode(command), qos=1)
            elif command is not None:
                await self._execute(client, command)
            self._stopping.check()  # before waiting, maybe long, for the next command

    def _not_subscribed(self, name: str) -> None:
        """A broker sent what this agent never subscribed to (amqtt, the demo's broker, sends
        other nodes' retained hellos to a resumed session): not a command, so not counted
        among refused commands; said once and dropped."""
        self._once.info(("not_subscribed",), "ignoring a message on %s: not subscribed", name)

    def _accept(self, payload: object) -> Command | Event | None:
        """The command if it decodes and verifies; refusals are counted and logged once each.
        A job this agent cannot verify for want of the key (none, or another) comes back as
        a `command_refused` event to publish, so the coordinator places it elsewhere rather
        than wait on it."""
        try:
            command = decode(payload, Kind.CMD, self.config.node)  # type: ignore[arg-type]
        except DecodeError as exc:
            self._refused(exc.reason, exc)
            return None
        try:
            if self._verifier is None:
                raise NoCommandKey(f"no command key at {self.config.command_key_file}")
            return self._verifier.verify(command)  # type: ignore[arg-type]
        except CommandRejected as exc:
            self._refused(exc.reason, exc)
            body = getattr(command, "body", None)
            if exc.reason not in KEY_REASONS or not isinstance(body, RunJob):
                return None
            detail = f"{exc.reason}: {exc}"[:1024]
            return Event(
                node=self.config.node,
                ts=self.clock.now(),
                kind="command_refused",
                job_id=body.job_id,
                detail=detail,
            )

    def _refused(self, reason: str, exc: Exception) -> None:
        self.refused[reason] += 1
        self._once.warning(("refused", reason), "command refused (%s): %s", reason, exc)

    async def _execute(self, client: aiomqtt.Client, command: Command) -> None:
        body = command.body
        if isinstance(body, Resend):
            await self._resend(client, body, command.id)
        elif isinstance(body, RunJob):
            await self.runner.start(body)
        elif isinstance(body, CancelJob):
            self.runner.cancel(body.job_id, body.grace_s)
        elif isinstance(body, Sleep):
            await self._before_sleep(client, body)
        elif isinstance(body, FetchOutput):
            answer = self.runner.output(body)
            await client.publish(topic(self.config.node, Kind.EVENTS), encode(answer), qos=1)
        else:
            self._once.warning(
                ("op", body.OP), "command %r is not supported by this agent", body.OP
            )

    async def _resend(self, client: aiomqtt.Client, body: Resend, request: str) -> None:
        """Send what the spool holds of the range and say which seqs of it are gone (expired,
        dropped for room, or never the file's): the coordinator gives up exactly those."""
        telemetry = topic(self.config.node, Kind.TELEMETRY)
        expected, gone = body.from_seq, []
        for batch in self.spool.resend(body.from_seq, body.to_seq):
            await client.publish(telemetry, batch.payload(), qos=1)
            if batch.seq_first > expected:
                gone.append((expected, batch.seq_first - 1))
            expected = batch.seq_last + 1
        if expected <= body.to_seq:
            gone.append((expected, body.to_seq))
        if len(gone) > MAX_GONE:  # one more for the rest: a held seq said gone is still sent
            gone[MAX_GONE - 1 :] = [(gone[MAX_GONE - 1][0], gone[-1][1])]
        events = topic(self.config.node, Kind.EVENTS)
        for first, last in gone:
            said = Event(
                node=self.config.node,
                ts=self.clock.now(),
                kind="seqs_gone",
                seq_first=first,
                seq_last=last,
            )
            await client.publish(events, encode(said), qos=1)
        log.info(
            "resent seq %d..%d on request %s (%d range(s) no longer held)",
            body.from_seq,
            body.to_seq,
            request,
            len(gone),
        )

    async def _before_sleep(self, client: aiomqtt.Client, body: Sleep) -> None:
        """Acknowledge, say `sleeping`, then `offline` as the Last Will of a suspended host
        would, and leave the session (the broker keeps queueing commands for it)."""
        node, events = self.config.node, topic(self.config.node, Kind.EVENTS)
        running = self.runner.count()
        if running:
            refusal = Event(
                node=node,
                ts=self.clock.now(),
                kind="sleep_refused",
                detail=f"{running} job(s) running",
            )
            await client.publish(events, encode(refusal), qos=1)
            log.warning("sleep refused: %d job(s) running", running)
            return
        self.awake.clear()  # no sample or batch after the statuses below
        ack = Event(
            node=node, ts=self.clock.now(), kind="sleep_ack", detail=self.config.sleep_method
        )
        await client.publish(events, encode(ack), qos=1)
        for state in ("sleeping", "offline"):
            status = Status(node=node, ts=self.clock.now(), state=state)
            await client.publish(topic(node, Kind.STATUS), encode(status), qos=1, retain=True)
        log.info(
            "going to sleep (%s) by %s", body.reason or "no reason given", self.config.sleep_method
        )
        raise GoingToSleep

    async def _sleep(self) -> None:
        """Sampling stays paused until the method returns, once the host is back."""
        try:
            how = await self._sleeper.sleep()
        except SleepFailed as exc:
            how = f"did not sleep: {exc}"
            log.error("sleep failed: %s", exc)
        finally:
            self.awake.set()
        log.info("awake again: %s", how)

    async def _say_offline(self) -> None:
        """A clean disconnect does not fire the Last Will, so say `offline` ourselves."""
        if self._client is None:
            return
        status = Status(node=self.config.node, ts=self.clock.now(), state="offline")
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            await asyncio.wait_for(
                self._client.publish(
                    topic(self.config.node, Kind.STATUS), encode(status), qos=1, retain=True
                ),
                2,
            )
