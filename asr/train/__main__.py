from asr.train.cli import main

main()
