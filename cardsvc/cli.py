"""The ``cardsvc`` command: migrate, serve, demo, create-officer, import, init-secret, identity checks, wallet;
``station`` is forwarded to the door station's own command (``cardsvc-station``).

The database layer is imported by the commands that use it, so that ``cardsvc station`` loads neither it nor the
server's settings.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cardsvc.errors import CardsvcError, ValidationFailed
from cardsvc.security import PiiCipher
from cardsvc.settings import Settings, SettingsError, write_secret_file

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger("cardsvc.cli")


def _session(settings: Settings) -> Session:
    from cardsvc.db.session import make_engine, make_session_factory

    return make_session_factory(make_engine(settings.database_url))()


def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from cardsvc.db.migrate import upgrade
    from cardsvc.db.session import make_engine

    engine = make_engine(settings.database_url)
    # Some migrations encrypt stored values (0012: phone numbers) under the keys derived from the service secret.
    upgrade(engine, cipher=PiiCipher.from_settings(settings))
    engine.dispose()
    print(f"database is up to date ({engine.url.render_as_string(hide_password=True)})")
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from cardsvc.serve import serve

    files = None
    if args.tls:
        from cardsvc import tls

        try:
            files = tls.prepare(settings.tls_dir, [*tls.lan_addresses(), *args.tls_host])
        except tls.TlsSetupError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"HTTPS with a certificate for {', '.join(files.hosts)} from the local authority {files.ca_certificate}"
              f"; each phone installs it once: https://{files.hosts[0]}:{args.port}/admin/tls", flush=True)
        if args.host in ("127.0.0.1", "localhost", "::1"):
            print("note: listening on this machine only; phones reach it with --host 0.0.0.0", flush=True)
    scheme = "https" if files else "http"
    print(f"cardsvc serving at {scheme}://{args.host}:{args.port}  (API docs: {scheme}://{args.host}:{args.port}/docs)",
          flush=True)
    return serve(args.host, args.port, args.workers, settings.shutdown_grace_seconds, files)


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from cardsvc.demo import load_demo

    if settings.environment == "production":
        print("refusing to load demo data into a production database", file=sys.stderr)
        return 2
    with _session(settings) as session:
        logins, created = load_demo(session, PiiCipher.from_settings(settings), settings.kek, Path(args.var_dir))
    print("demo data loaded" if created else "demo data already present; nothing added")
    from cardsvc.demo.wallet import make_development_credentials

    if make_development_credentials():
        print("development wallet credentials written to var/wallet-dev/ (NOT APPLE'S, development only)")
    print("demo logins (also in var/demo-logins.txt):")
    for login in logins:
        scope = login.chapter_code or "whole tree"
        print(f"  {login.role:8} username: {login.username:12} password: {login.password}   scope: {scope}")
    return 0


def cmd_create_officer(settings: Settings, args: argparse.Namespace) -> int:
    from cardsvc.services import chapters, officers
    from cardsvc.services.context import system_actor

    password = sys.stdin.readline().rstrip("\r\n") if args.password_stdin else None
    if not password:
        print("give the password on standard input with --password-stdin", file=sys.stderr)
        return 2
    actor = system_actor("cli")
    with _session(settings) as session:
        chapter_id = chapters.find_by_code(session, actor, args.chapter).chapter.id if args.chapter else None
        officer = officers.create_officer(
            session, actor, username=args.username, password=password, role=args.role, chapter_id=chapter_id,
            full_name=args.full_name or "", permissions=args.permission or [],
        )
    print(f"created {officer.role} {officer.username} (id {officer.id})")
    return 0


def _progress(done: int, total: int, unit: str = "rows") -> None:
    width = 30
    filled = width * done // total if total else width
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {unit}", end="", file=sys.stderr, flush=True)
    if done >= total:
        print(file=sys.stderr)


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    from cardsvc.importing.report import capped_problems, problem_counts, skipped_counts
    from cardsvc.services import imports
    from cardsvc.services.context import system_actor

    path = Path(args.file)
    data = path.read_bytes()
    with _session(settings) as session:
        try:
            report = imports.import_members(
                session, system_actor("cli"), PiiCipher.from_settings(settings), data=data, filename=path.name,
                chapter_code=args.chapter, dry_run=args.dry_run, progress=_progress,
            )
        except ValidationFailed as exc:
            # A file that cannot be read at all: the officer's language first.
            for detail in exc.details or []:
                print(f"lỗi: {detail['message_vi']}", file=sys.stderr)
            print(f"error: {exc}", file=sys.stderr)
            return 2
    labels = report.labels
    print(f"dòng tên cột / header row: {report.table.header_row}")
    if report.ignored_columns:
        print(f"cột không dùng / columns not used: {', '.join(report.ignored_columns)}")
    for group in skipped_counts(report.table.skipped, report.table.blank_rows):
        rows = f" ({', '.join(map(str, group['rows']))})" if group["rows"] else ""
        print(f"bỏ qua / skipped: {group['count']} × {group['message_vi']} / {group['message']}{rows}")
    for problem in capped_problems(report.problems):
        kind_vi, kind_en = ("lỗi", "error") if problem.severity == "error" else ("lưu ý", "warning")
        print(f"dòng {problem.row}, {kind_vi}: {labels.message(problem, 'vi')} / "
              f"row {problem.row}, {kind_en}: {labels.message(problem, 'en')}")
    for group in problem_counts(report.problems, labels):
        if group["count"] > len(group["rows"]):
            print(f"… {group['count']} dòng / rows: {group['message_vi']} / {group['message']}")
    if args.errors_file:
        out = Path(args.errors_file)
        out.write_bytes(imports.report_errors_file(report, fmt="csv" if out.suffix.lower() == ".csv" else "xlsx",
                                                   lang="vi"))
        print(f"tệp kèm cột lỗi / file with an error column: {out}")
    verb_vi, verb = ("sẽ nhập", "would import") if report.dry_run else ("đã nhập", "imported")
    print(f"{verb_vi}: {report.created} mới, {report.updated} cập nhật, {report.unchanged} không đổi, "
          f"{report.failed} dòng lỗi (trên {report.rows_total})")
    print(f"{verb}: {report.created} new, {report.updated} updated, {report.unchanged} unchanged, "
          f"{report.failed} rows with errors (of {report.rows_total})")
    return 1 if report.failed else 0


def cmd_keys(settings: Settings, args: argparse.Namespace) -> int:
    from cardsvc.services import keys
    from cardsvc.services.context import system_actor

    actor = system_actor("cli")
    with _session(settings) as session:
        if args.keys_command == "create":
            key = keys.create_key(session, actor, settings.kek, purpose=args.purpose, algorithm=args.alg)
            print(f"created {key.purpose} key {key.kid} ({key.algorithm}), now active")
        elif args.keys_command == "rotate":
            key, previous = keys.rotate(session, actor, settings.kek, purpose=args.purpose, algorithm=args.alg)
            retired = f"; {previous.kid} retired (it still verifies its cards)" if previous else ""
            print(f"{key.purpose} key {key.kid} ({key.algorithm}) is now active{retired}")
        elif args.keys_command == "retire":
            result = keys.retire(session, actor, args.kid, compromised=args.compromised)
            print(f"key {result.key.kid} is now {result.key.status}")
            if args.compromised:
                print(f"{len(result.cards_to_reissue)} cards revoked; reissue them (cardsvc issue --chapter CODE):")
                for card in result.cards_to_reissue:
                    print(f"  {card.member.member_number}  {card.member.chapter.code}  card {card.card_id}")
        else:
            for key in keys.list_keys(session, actor):
                created = f"{key.created_at:%Y-%m-%d}"
                print(f"{key.kid}  {key.purpose:5}  {key.algorithm:5}  {key.status:11}  created {created}")
    return 0


def cmd_issue(settings: Settings, args: argparse.Namespace) -> int:
    from cardsvc.db.session import make_engine, make_session_factory
    from cardsvc.services import chapters, jobs, printing
    from cardsvc.services.context import system_actor
    from cardsvc.services.keys import KeyRing

    actor = system_actor("cli")
    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    with factory() as session:
        if args.job is not None:
            # Join (or resume) a job another process started: several workers share it on PostgreSQL.
            job = jobs.get_job(session, actor, args.job)
            if job.kind != "card_batch":
                print(f"error: job {job.id} is not a batch issuance ({job.kind})", file=sys.stderr)
                return 2
        else:
            chapter = chapters.find_by_code(session, actor, args.chapter).chapter
            job = jobs.start_batch(session, actor, chapter.id, subtree=args.subtree)
        job_id, already = job.id, job.done + job.failed
    print(f"job {job_id}: more workers join with `cardsvc issue --job {job_id}`", file=sys.stderr)
    reporter = BatchProgress(sys.stderr, interactive=sys.stdout.isatty(), start_at=already)
    stopping = threading.Event()

    def stop(_signum: int, _frame: object) -> None:
        if stopping.is_set():
            raise KeyboardInterrupt
        stopping.set()
        print("\nđang dừng sau phần đang làm / stopping after the chunk in hand…", file=sys.stderr)

    handled = (signal.SIGINT, signal.SIGTERM) if threading.current_thread() is threading.main_thread() else ()
    previous = {signum: signal.signal(signum, stop) for signum in handled}
    try:
        jobs.run_batch(factory, KeyRing(settings.kek), job_id, validity_years=settings.card_validity_years,
                       list_size=settings.status_list_size, progress=reporter, stopping=stopping)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    reporter.finish()
    with factory() as session:
        job = jobs.get_job(session, actor, job_id)
        if job.status == "failed":
            print(f"error: {job.error}", file=sys.stderr)
            return 1
        if job.status != "done":
            print(f"job {job.id}: this worker has no chunk left; other workers are finishing the job "
                  f"({job.done + job.failed}/{job.total})")
            return 0
        print(f"issued {job.done} cards (job {job.id})")
        if job.failed:
            print(f"{job.failed} hội viên chưa được cấp thẻ / {job.failed} members got no card:", file=sys.stderr)
            for failure in jobs.job_failures(session, actor, job_id):
                print(f"  {failure.member_number}: {failure.message_vi} / {failure.message}", file=sys.stderr)
        if args.pdf:
            if args.pdf.lower().endswith(".zip"):
                # A province: one PDF per chapter, written as a stream (memory does not grow with the job).
                with Path(args.pdf).open("wb") as out:
                    printing.write_sheet_archive_of(jobs.job_cards_by_chapter(session, actor, job_id), settings, out)
            else:
                Path(args.pdf).write_bytes(printing.sheets_pdf_of(jobs.job_cards(session, actor, job_id), settings))
            print(f"A4 sheets written to {args.pdf}")
    return 1 if job.failed else 0


def _duration(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class BatchProgress:
    """A batch job's progress on ``stream``: a bar with the rate and the time left on a terminal, a log line every
    ``every`` seconds otherwise (and one at the end), so that a log file is not flooded by carriage returns.

    The rate counts every worker's cards (the job's counts) since this process started on the job.
    """

    def __init__(self, stream: Any, *, interactive: bool, start_at: int = 0, every: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._interactive = interactive
        self._every = every
        self._clock = clock
        self._started = clock()
        self._start_at = start_at
        self._last_line = self._started
        self._last: tuple[int, int] | None = None
        self._ended = False

    def _pace(self, done: int, total: int) -> tuple[float, float | None]:
        elapsed = self._clock() - self._started
        rate = (done - self._start_at) / elapsed if elapsed > 0 else 0.0
        left = (total - done) / rate if rate > 0 else None
        return rate, left

    def __call__(self, done: int, total: int) -> None:
        self._last = (done, total)
        rate, left = self._pace(done, total)
        left_text = _duration(left) if left is not None else "?"
        if self._interactive:
            width = 30
            filled = width * done // total if total else width
            print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} cards  {rate:,.0f} thẻ/s  "
                  f"còn {left_text}  ", end="", file=self._stream, flush=True)
            if done >= total:
                print(file=self._stream, flush=True)
                self._ended = True
            return
        now = self._clock()
        if done >= total or now - self._last_line >= self._every:
            self._last_line = now
            self._ended = done >= total
            print(f"đang cấp thẻ / issuing: {done}/{total} cards, {rate:,.0f} cards/s, còn / left {left_text}",
                  file=self._stream, flush=True)

    def finish(self) -> None:
        """End the display: the last figures if they were not shown (this worker ended before the job did)."""
        if self._last is not None and not self._ended:
            if self._interactive:
                print(file=self._stream, flush=True)
            else:
                done, total = self._last
                rate, _ = self._pace(done, total)
                print(f"đang cấp thẻ / issuing: {done}/{total} cards, {rate:,.0f} cards/s", file=self._stream,
                      flush=True)
            self._ended = True


def cmd_sync_identities(settings: Settings, args: argparse.Namespace) -> int:
    import os
    import threading

    from cardsvc.db.session import make_engine, make_session_factory
    from cardsvc.registry import gateway_for
    from cardsvc.services import chapters
    from cardsvc.services.context import system_actor
    from cardsvc.services.identity import sync

    # One line per registry request would bury the progress bar (the URLs carry no personal data either way).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    actor = system_actor("cli")
    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    gateway = gateway_for(settings)
    cipher = PiiCipher.from_settings(settings)
    with factory() as session:
        chapter_id = chapters.find_by_code(session, actor, args.chapter).chapter.id if args.chapter else None
        run = None if args.force else sync.unfinished_run(session, actor, chapter_id)
        if run is not None:
            print(f"resuming identity sync run {run.id}")
        else:
            run = sync.start_sync(session, actor, chapter_id=chapter_id, force=args.force,
                                  reverify_days=settings.registry_reverify_days)
        before = sync.summarize(session, run)
    workers = max(1, args.workers)
    if workers > 1 and engine.dialect.name == "sqlite":
        # SQLite has one writer at a time; more workers would only wait for each other.
        print("SQLite: running with one worker", file=sys.stderr)
        workers = 1
    lock = threading.Lock()
    finished = [before.done + before.failed]

    def tick() -> None:
        with lock:
            finished[0] += 1
            _progress(finished[0], before.total, unit="members")

    errors: list[BaseException] = []

    def work(n: int) -> None:
        options = sync.SyncOptions(worker=f"cli-{os.getpid()}-{n}", batch_size=settings.registry_claim_batch_size,
                                   lease_seconds=settings.registry_claim_lease_seconds, progress=tick)
        try:
            sync.run_sync(factory, gateway, cipher, run.id, options)
        except Exception as exc:  # Reported below; the run stays resumable.
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,), name=f"identity-sync-{n}") for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with factory() as session:
        summary = sync.summarize(session, sync.get_run(session, actor, run.id))
    engine.dispose()
    outcomes = ", ".join(f"{count} {outcome}" for outcome, count in sorted(summary.outcomes.items())) or "none"
    print(f"identity sync run {summary.run_id}: {summary.status}; {summary.total} members queued; outcomes: "
          f"{outcomes}; {summary.failed} failed; {summary.pending + summary.claimed} left")
    print(f"not queued: {summary.skipped_no_consent} without consent, {summary.skipped_recent} verified recently")
    if summary.error:
        print(f"error: {summary.error}", file=sys.stderr)
        return 1
    if errors:
        print(f"error: {type(errors[0]).__name__}; chạy lại lệnh để làm tiếp — run the command again to resume",
              file=sys.stderr)
        return 1
    return 0


def cmd_fake_registry(settings: Settings, args: argparse.Namespace) -> int:
    from cardsvc.demo.registry import registry_records
    from integrations.population.fake_server import serve_fake_registry

    with _session(settings) as session:
        records = registry_records(session, PiiCipher.from_settings(settings))
    print(f"fake population registry on http://{args.host}:{args.port} knowing {len(records)} members "
          "(and a synthetic population); development keys only")
    serve_fake_registry(args.port, args.host, records)
    return 0


def cmd_registry_notifications(settings: Settings, _args: argparse.Namespace) -> int:
    from cardsvc.db.session import make_engine, make_session_factory
    from cardsvc.registry import gateway_for
    from cardsvc.services.context import system_actor
    from cardsvc.services.identity import notifications
    from cardsvc.services.identity.gateway import registry_failure_message
    from integrations.population import RegistryError

    gateway = gateway_for(settings)
    engine = make_engine(settings.database_url)
    try:
        summary = notifications.pull_notifications(make_session_factory(engine), gateway,
                                                   PiiCipher.from_settings(settings), system_actor("cli"))
    except RegistryError as exc:
        print(f"error: {registry_failure_message(exc)}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"{summary.received} registry notifications read: {summary.reviews_opened} reviews opened, "
          f"{summary.ignored} not about a consenting member, {summary.duplicates} already seen")
    return 0


def cmd_registry_publish(settings: Settings, args: argparse.Namespace) -> int:
    from cardsvc.db.models import Job
    from cardsvc.db.session import make_engine, make_session_factory
    from cardsvc.registry import gateway_for
    from cardsvc.services import chapters
    from cardsvc.services.context import system_actor
    from cardsvc.services.identity import publication

    actor = system_actor("cli")
    gateway = gateway_for(settings)
    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    with factory() as session:
        chapter_id = chapters.find_by_code(session, actor, args.chapter).chapter.id if args.chapter else None
        job_id = publication.start_publication(session, actor, chapter_id=chapter_id).id
    summary = publication.run_publication(factory, gateway, PiiCipher.from_settings(settings), job_id)
    with factory() as session:
        error = session.get_one(Job, job_id).error
    engine.dispose()
    print(f"membership facts: {summary.published} published, {summary.withdrawn} withdrawn, "
          f"{summary.unchanged} unchanged, {summary.failed} failed {summary.errors or ''}".rstrip())
    if error:
        print(f"error: {error}", file=sys.stderr)
    return 1 if summary.failed or error else 0


def _print_verdict(verdict: object) -> None:
    claims = getattr(verdict, "claims", None)
    who = f"{claims.display_name} ({claims.member_number}, {claims.chapter_code})" if claims else "unknown holder"
    if getattr(verdict, "ok", False):
        print(f"VALID: {who}")
    else:
        print(f"REFUSED: {getattr(verdict, 'reason', '?')}: {who}")


def cmd_nfc(settings: Settings, args: argparse.Namespace) -> int:
    try:
        from cardsvc import nfc
    except ModuleNotFoundError:
        print("error: NFC needs pyscard: pip install 'cardsvc[readers]' (Debian: apt install pcscd swig "
              "libpcsclite-dev first)", file=sys.stderr)
        return 2
    from cardsvc.services import cards, checkins
    from cardsvc.services.context import system_actor
    from verification.ndef import NdefError
    from verification.readers.errors import ReaderError

    with _session(settings) as session:
        verifier = checkins.server_verifier(session)
        try:
            if args.nfc_command == "write":
                card = cards.get_card(session, system_actor("cli"), args.card)
                password = sys.stdin.readline().rstrip("\r\n").encode() if args.password_stdin else None
                report = nfc.write_card(card.credential, reader_name=args.reader, uri=args.uri, lock=args.lock,
                                        password=password or None, verify=verifier, wait=args.wait)
                print(f"wrote card {card.card_id} ({report.credential_bytes} bytes) to {report.variant} "
                      f"{report.uid} on {report.reader}; read back and verified"
                      f"{'; locked read-only' if report.locked else ''}"
                      f"{'; write-protected by password' if report.password_protected else ''}")
                _print_verdict(report.verdict)
            else:
                read = nfc.read_card(args.reader, verifier, wait=args.wait)
                print(f"read {len(read.credential)} bytes in {read.apdu_count} APDUs from {read.reader}")
                _print_verdict(read.verdict)
                return 0 if getattr(read.verdict, "ok", False) else 1
        except (ReaderError, NdefError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return 0


def cmd_wallet(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from cardsvc.db.session import make_engine, make_session_factory
    from cardsvc.services import wallet, wallet_updates

    setup = wallet.load_setup(settings)
    if args.wallet_command == "process":
        engine = make_engine(settings.database_url)
        summary = wallet_updates.process_updates(
            make_session_factory(engine), setup, wallet_updates.make_senders(setup, settings),
            worker=f"cli-{os.getpid()}", max_attempts=settings.wallet_max_attempts)
        engine.dispose()
        print(f"wallet updates: {summary.sent} sent, {summary.retried} to retry later, {summary.failed} given up")
        return 1 if summary.failed else 0
    now = datetime.now(UTC)
    for service, on in (("Apple Wallet", setup.apple is not None), ("Google Wallet", setup.google is not None)):
        print(f"{service}: {'configured' if on else 'NOT configured'}")
    if setup.apple is not None and setup.apple.development:
        print("Apple Wallet: development credentials (NOT APPLE'S): passes are signed but no iPhone installs them")
    if setup.google is not None and setup.google.account.development:
        print("Google Wallet: development service account: save links are signed but Google does not know the key")
    expiring = False
    for expiry in wallet.certificate_expiry(setup, now):
        expiring = expiring or expiry.days_left <= wallet.EXPIRY_WARNING_DAYS
        print(f"certificate {expiry.name}: {expiry.days_left} days left (until {expiry.not_after:%Y-%m-%d}) "
              f"{expiry.subject}")
    for problem in setup.problems:
        print(f"problem: {problem}")
    return 0 if setup.apple is not None and setup.google is not None and not expiring else 1


def cmd_init_secret(_settings: Settings, args: argparse.Namespace) -> int:
    path = Path(args.file)
    if path.exists():
        print(f"{path} exists; refusing to overwrite a secret (data encrypted under it would be lost)",
              file=sys.stderr)
        return 2
    write_secret_file(path)
    print(f"wrote a new secret to {path} (mode 0600); back it up outside the database")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cardsvc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create or upgrade the database schema").set_defaults(func=cmd_migrate)
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--tls", action="store_true",
                       help="HTTPS with a certificate for this machine's LAN addresses from a local authority "
                            "(CARDSVC_TLS_DIR); for a venue without internet, see docs/operations.md")
    serve.add_argument("--tls-host", action="append", default=[], metavar="ADDRESS_OR_NAME",
                       help="also certify this address or local name (e.g. laptop.local); repeatable")
    serve.set_defaults(func=cmd_serve)
    demo = sub.add_parser("demo", help="load demo chapters, members and officers (idempotent)")
    demo.add_argument("--var-dir", default="var")
    demo.set_defaults(func=cmd_demo)
    officer = sub.add_parser("create-officer", help="create an officer account")
    officer.add_argument("--username", required=True)
    officer.add_argument("--role", required=True, choices=["admin", "officer", "viewer"])
    officer.add_argument("--chapter", help="chapter code: the root of the officer's scope")
    officer.add_argument("--full-name")
    officer.add_argument("--permission", action="append", choices=["pii"])
    officer.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    officer.set_defaults(func=cmd_create_officer)
    imp = sub.add_parser("import", help="import a member list (CSV or XLSX)")
    imp.add_argument("file")
    imp.add_argument("--chapter", help="chapter code for rows without one")
    imp.add_argument("--dry-run", action="store_true", help="check only; write nothing")
    imp.add_argument("--errors-file", help="also write the file with an error column beside each row "
                     "(.xlsx, or .csv)")
    imp.set_defaults(func=cmd_import)
    keys = sub.add_parser("keys", help="card and trust signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    for name, text in (("create", "create the first active key"), ("rotate", "activate a new key, retire the old")):
        cmd = keys_sub.add_parser(name, help=text)
        cmd.add_argument("--alg", choices=["ed25519", "es256"], default="ed25519")
        cmd.add_argument("--purpose", choices=["card", "trust"], default="card")
    retire = keys_sub.add_parser("retire", help="retire a key (--compromised: its cards fail and are listed)")
    retire.add_argument("kid")
    retire.add_argument("--compromised", action="store_true")
    keys_sub.add_parser("list", help="list keys")
    keys.set_defaults(func=cmd_keys)
    issue = sub.add_parser("issue", help="issue cards to every active member of a chapter without a valid card")
    which = issue.add_mutually_exclusive_group(required=True)
    which.add_argument("--chapter", help="chapter code: start a new batch job")
    which.add_argument("--job", type=int, help="join or resume batch job N as one more worker (PostgreSQL: "
                                               "several processes, on one host or several, share one job)")
    issue.add_argument("--subtree", action="store_true", help="include all sub-chapters")
    issue.add_argument("--pdf", help="write the A4 sheets of the issued cards to this file; a name ending in .zip "
                                     "gets one PDF per chapter, written as a stream (for a province's job)")
    issue.set_defaults(func=cmd_issue)
    sync = sub.add_parser("sync-identities", help="verify consenting members with the national population registry")
    sync.add_argument("--chapter", help="chapter code: verify its subtree (default: the whole tree)")
    sync.add_argument("--workers", type=int, default=1, help="parallel workers (PostgreSQL)")
    sync.add_argument("--force", action="store_true", help="start a new run and include recently verified members")
    sync.set_defaults(func=cmd_sync_identities)
    fake = sub.add_parser("fake-registry", help="serve a fake population registry that knows the members (development)")
    fake.add_argument("--port", type=int, default=8900)
    fake.add_argument("--host", default="127.0.0.1")
    fake.set_defaults(func=cmd_fake_registry)
    sub.add_parser("registry-notifications", help="read the registry's change feed once; open officer reviews"
                   ).set_defaults(func=cmd_registry_notifications)
    publish = sub.add_parser("registry-publish", help="publish / withdraw membership facts of consenting members")
    publish.add_argument("--chapter", help="chapter code (default: the whole tree)")
    publish.set_defaults(func=cmd_registry_publish)
    nfc_cmd = sub.add_parser("nfc", help="write or read member cards on NFC tags (NTAG215/216) with a PC/SC reader")
    nfc_sub = nfc_cmd.add_subparsers(dest="nfc_command", required=True)
    write = nfc_sub.add_parser("write", help="write a card's credential to the tag on the reader, then verify it")
    write.add_argument("--card", required=True, help="card id (16 hex digits)")
    write.add_argument("--uri", help="also write a link to the member's card page (https://…)")
    write.add_argument("--lock", action="store_true", help="make the tag permanently read-only after verifying")
    write.add_argument("--password-stdin", action="store_true", help="protect writes with a password read from stdin")
    read = nfc_sub.add_parser("read", help="read and verify the card on the reader")
    for command in (write, read):
        command.add_argument("--reader", help="reader index, name or part of a name (when several are connected)")
        command.add_argument("--wait", type=float, default=10.0, help="seconds to wait for a tag to be tapped")
    nfc_cmd.set_defaults(func=cmd_nfc)
    wallet = sub.add_parser("wallet", help="Apple and Google Wallet passes")
    wallet_sub = wallet.add_subparsers(dest="wallet_command", required=True)
    wallet_sub.add_parser("check", help="what is configured, what is missing, days left of the certificates "
                          "(exit 1 unless both wallets work and no certificate expires within 30 days)")
    wallet_sub.add_parser("process", help="send the pass updates that are due (the server's worker does it too)")
    wallet.set_defaults(func=cmd_wallet)
    # Listed for --help only: main() hands `cardsvc station …` to the station's command before this parser runs.
    sub.add_parser("station", help="run a door station (the same as cardsvc-station; see cardsvc station --help)")
    secret = sub.add_parser("init-secret", help="create the service secret file (production setup)")
    secret.add_argument("--file", required=True)
    secret.set_defaults(func=cmd_init_secret)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == ["station"]:
        from station.cli import main as station_main

        return station_main(arguments[1:], prog="cardsvc station")
    from cardsvc.logs import configure_logging

    args = build_parser().parse_args(arguments)
    try:
        settings = Settings()
        # The server logs JSON lines for log collectors; commands an operator runs by hand log plain text.
        configure_logging(settings.log_level, json_format=args.command == "serve")
        return int(args.func(settings, args))
    except (SettingsError, CardsvcError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
