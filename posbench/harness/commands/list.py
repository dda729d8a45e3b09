"""`eval.py list`: what posbench knows about (tasks, groups, schemes)."""


def register(sub):
    p = sub.add_parser("list", help="list tasks, groups or position schemes",
                       description="List what posbench can run. `list tasks` shows every task with its groups; "
                       "`list schemes` shows each position scheme with its parameters.")
    p.add_argument("what", choices=["tasks", "groups", "schemes"], help="what to list")
    p.add_argument("--include-path", action="append", default=[], metavar="DIR",
                   help="extra folder of task YAML files (repeatable)")
    p.set_defaults(func=run)


def run(args):
    if args.what == "schemes":
        from posbench.position_schemes import list_schemes
        for name, doc in list_schemes().items():
            print(f"{name:10s} {doc}")
        return 0
    from posbench.tasks import TaskRegistry
    reg = TaskRegistry(include_paths=args.include_path)
    if args.what == "tasks":
        for spec in reg.tasks():
            print(f"{spec.name:28s} groups: {', '.join(spec.groups) or '-'}")
    else:
        for group, members in reg.groups().items():
            print(f"{group:24s} {len(members):3d} tasks: {', '.join(members)}")
    return 0
