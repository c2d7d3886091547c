from chronosq.cli import main

main()
