int parse(void) {
    /* TODO: report errors */
    return 0;
}
