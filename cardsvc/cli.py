"""The ``cardsvc`` command: migrate, serve, demo, create-officer, import, init-secret."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.orm import Session

from cardsvc.db.migrate import upgrade
from cardsvc.db.session import make_engine, make_session_factory
from cardsvc.errors import CardsvcError
from cardsvc.security import PiiCipher
from cardsvc.settings import Settings, SettingsError, write_secret_file

log = logging.getLogger("cardsvc.cli")


def _session(settings: Settings) -> Session:
    return make_session_factory(make_engine(settings.database_url))()


def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> int:
    engine = make_engine(settings.database_url)
    upgrade(engine)
    engine.dispose()
    print(f"database is up to date ({engine.url.render_as_string(hide_password=True)})")
    return 0


def cmd_serve(_settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    print(f"cardsvc serving at http://{args.host}:{args.port}  (API docs: http://{args.host}:{args.port}/docs)")
    uvicorn.run("cardsvc.app:create_app", factory=True, host=args.host, port=args.port, workers=args.workers)
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from cardsvc.demo import load_demo

    if settings.environment == "production":
        print("refusing to load demo data into a production database", file=sys.stderr)
        return 2
    with _session(settings) as session:
        logins, created = load_demo(session, PiiCipher.from_settings(settings), Path(args.var_dir))
    print("demo data loaded" if created else "demo data already present; nothing added")
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


def _progress(done: int, total: int) -> None:
    width = 30
    filled = width * done // total if total else width
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} rows", end="", file=sys.stderr, flush=True)
    if done >= total:
        print(file=sys.stderr)


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    from cardsvc.services import imports
    from cardsvc.services.context import system_actor

    path = Path(args.file)
    data = path.read_bytes()
    with _session(settings) as session:
        report = imports.import_members(
            session, system_actor("cli"), PiiCipher.from_settings(settings), data=data, filename=path.name,
            chapter_code=args.chapter, dry_run=args.dry_run, progress=_progress,
        )
    for problem in report.problems:
        column = f", column {problem.column}" if problem.column else ""
        print(f"row {problem.row}{column}: {problem.severity}: {problem.message_en} / {problem.message_vi}")
    verb = "would import" if report.dry_run else "imported"
    print(f"{verb}: {report.created} new, {report.updated} updated, {report.unchanged} unchanged, "
          f"{report.failed} rows with errors (of {report.rows_total})")
    return 1 if report.failed else 0


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
    imp.set_defaults(func=cmd_import)
    secret = sub.add_parser("init-secret", help="create the service secret file (production setup)")
    secret.add_argument("--file", required=True)
    secret.set_defaults(func=cmd_init_secret)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = Settings()
        return int(args.func(settings, args))
    except (SettingsError, CardsvcError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
