"""The Celery app. `celery -A workers.celery_app worker|beat` uses the module-level `app`,
built from the environment's settings; tests build their own with `make_celery()`.

Broker: Redis in production/CI; by default Celery's SQLAlchemy transport on SQLite
(`sqla+sqlite:///var/broker.db`). kombu passes every broker_transport_options key to
create_engine(), so the embedded broker's polling interval is set on the transport
class instead (settings.broker_poll_interval, 50 ms by default).
"""
from __future__ import annotations

import logging

from celery import Celery
from celery.signals import beat_init, setup_logging

import app.models as _all_models  # noqa: F401  (every table on the metadata, for foreign keys)
from config.celery import celery_config
from config.settings import Settings, VAR_DIR

log = logging.getLogger("custos.workers")


def make_celery(settings: Settings) -> Celery:
    settings.validate()
    if settings.embedded_broker:
        from kombu.transport.sqlalchemy import Transport
        Transport.polling_interval = settings.broker_poll_interval
        VAR_DIR.mkdir(exist_ok=True)
    celery = Celery("custos", include=["workers.tasks", "workers.messaging_tasks", "workers.recovery_tasks",
                                       "workers.inheritance_tasks", "workers.price_tasks"])
    celery.conf.update(celery_config(settings))
    celery.custos_settings = settings
    return celery


@setup_logging.connect
def _logging(**_kwargs):
    from config.logging import configure_logging
    configure_logging(Settings.from_env())


app = make_celery(Settings.from_env())


WAKE_EXPIRES = 2.0   # seconds: a wake-up still queued after this is dropped (newer ones follow)


def wake_follower(celery):
    """What beat's ZMQ thread calls: enqueue a `woken` follower pass that expires when
    it waited WAKE_EXPIRES seconds in the queue. Wake-ups carry nothing (the notifications
    are in the feed), so during a long pass they neither pile up nor hold workers on its
    lock (workers.tasks.follow_chain)."""
    return lambda: celery.send_task("workers.tasks.follow_chain", kwargs={"woken": True}, expires=WAKE_EXPIRES)


@beat_init.connect
def _zmq_wake(sender=None, **_kwargs):
    """In the (single) beat process: with BITCOIND_ZMQ_URL set, a thread subscribes to
    Core's hashblock/sequence notifications, records the mempool ones in the feed
    (chain.feed) and enqueues a block-follower pass at once (debounced). Beat's own
    schedule runs a pass every CHAIN_WATCH_INTERVAL regardless."""
    celery = getattr(sender, "app", None) or app
    settings = celery.custos_settings
    if not settings.bitcoind_zmq_url:
        return
    from chain.feed import FeedWriter
    from chain.zmqwake import start
    start(settings.bitcoind_zmq_url, wake_follower(celery), feed=FeedWriter(settings.database_url))
    log.info("chain follower: woken by ZMQ notifications")
