// The `offbrand` command line: serve, user, outbox, backup, check, version.
// Returns the process exit code.
#ifndef OFFBRAND_CLI_H_
#define OFFBRAND_CLI_H_

namespace offbrand {
int CliMain(int argc, char** argv);
}

#endif  // OFFBRAND_CLI_H_
