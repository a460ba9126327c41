// `npm run demo`: three namespace hosts running the mesh end to end. Delivered with the
// operations milestone (issue #6); until then it says so instead of pretending.
process.stderr.write('hostmesh demo: not implemented yet (it needs the mesh path, issues #3-#6)\n')
process.exit(2)
