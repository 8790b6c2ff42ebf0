#include "cli.h"

int main(int argc, char** argv) { return offbrand::CliMain(argc, argv); }
