from pyggy.bench.cli import main

main()
