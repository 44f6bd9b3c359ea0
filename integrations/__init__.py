"""Pure rules and adapters for outside systems (citizen ID numbers, the national population database)."""
