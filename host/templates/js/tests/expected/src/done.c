/* TODO: already upper case */
int done;
