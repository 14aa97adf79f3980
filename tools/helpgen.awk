# Turns tools/nub.help into the CLI's help pages (-v mode=c: a C header) or its man page (-v mode=man -v version=V).
# POSIX awk (Debian's mawk or gawk). The format of the input is described at the top of tools/nub.help.

/^#/ && nblocks == 0 { next }
/^@name / && nblocks == 0 { name_line = substr($0, 7); next }
/^== / { nblocks++; bname[nblocks] = substr($0, 4); nlines[nblocks] = 0; next }
nblocks > 0 { nlines[nblocks]++; text[nblocks, nlines[nblocks]] = $0 }

END {
    for (b = 1; b <= nblocks; b++)
        while (nlines[b] > 0 && text[b, nlines[b]] == "")
            nlines[b]--
    if (mode == "c")
        emit_c()
    else if (mode == "man")
        emit_man()
    else {
        print "helpgen.awk: mode must be c or man" > "/dev/stderr"
        exit 1
    }
}

# ---- the C header ------------------------------------------------------------

# s as the inside of a C string literal ('?' escaped so that no trigraph forms).
function c_escape(s,    out, i, c) {
    out = ""
    for (i = 1; i <= length(s); i++) {
        c = substr(s, i, 1)
        if (c == "\\" || c == "\"" || c == "?")
            out = out "\\" c
        else
            out = out c
    }
    return out
}

function emit_c(    b, i) {
    print "/* Generated from tools/nub.help by tools/helpgen.awk: do not edit. */"
    print "static const struct nub_cli_help_page {"
    print "    const char *command; /* \"nub\" (the top level), \"run\", \"caps put\", ... */"
    print "    const char *text;"
    print "} nub_cli_help_pages[] = {"
    for (b = 1; b <= nblocks; b++) {
        printf "    {\"%s\",\n", c_escape(bname[b])
        for (i = 1; i <= nlines[b]; i++)
            printf "     \"%s\\n\"%s\n", c_escape(text[b, i]), i == nlines[b] ? "}," : ""
    }
    print "};"
}

# ---- the man page --------------------------------------------------------------

# s as roff text: backslashes as \e, hyphens as \- (option dashes), a leading . or ' made literal.
function roff(s,    out, i, c) {
    out = ""
    for (i = 1; i <= length(s); i++) {
        c = substr(s, i, 1)
        if (c == "\\")
            out = out "\\e"
        else if (c == "-")
            out = out "\\-"
        else
            out = out c
    }
    if (out ~ /^[.']/)
        out = "\\&" out
    return out
}

function emit_man(    b) {
    print ".\\\" Generated from tools/nub.help by tools/helpgen.awk: do not edit."
    printf ".TH NUB 1 \"\" \"nub %s\" \"nub manual\"\n", version
    print ".SH NAME"
    print name_line
    render(1, 1)
    print ".SH SEE ALSO"
    print ".BR gdb (1);"
    print "the nub documentation: share/doc/nub/cli.md and README.md where nub is installed,"
    print "docs/cli.md in its source tree."
}

# The subcommands' pages, each as a subsection of COMMANDS.
function render_commands(    b) {
    for (b = 2; b <= nblocks; b++) {
        printf ".SS \"nub %s\"\n", bname[b]
        render(b, 0)
    }
}

# Block b as roff; top: the top-level page (its headings become sections, its
# first text DESCRIPTION, and the commands' pages follow its Commands section).
function render(b, top,    i, l, rest, pos, term, desc, syn, def, ex, pp, sect, described, done) {
    for (i = 1; i <= nlines[b]; i++) {
        l = text[b, i]
        if (syn && l ~ /^       [^ ]/) {
            print roff(substr(l, 8))
            continue
        }
        if (syn) {
            print ".fi"
            syn = 0
        }
        if (ex && l !~ /^  \$ /) {
            print ".fi"
            print ".RE"
            ex = 0
            pp = 1
        }
        if (l ~ /^usage: /) {
            print top ? ".SH SYNOPSIS" : ".PP"
            print ".nf"
            print roff(substr(l, 8))
            syn = 1
        } else if (l == "") {
            pp = 1
            def = 0
        } else if (l ~ /^[A-Z][A-Za-z ]*:$/) {
            if (top && sect == "Commands" && !done) {
                render_commands()
                done = 1
            }
            sect = substr(l, 1, length(l) - 1)
            if (top)
                print ".SH " toupper(sect)
            else
                printf ".PP\n.B %s\n", sect
            pp = def = 0
        } else if (l ~ /^  \$ /) {
            if (!ex) {
                if (pp)
                    print ".PP"
                print ".RS"
                print ".nf"
            }
            print roff(substr(l, 3))
            ex = 1
            pp = 0
        } else if (l ~ /^  [^ ]/) {
            rest = substr(l, 3)
            pos = match(rest, /  +/)
            term = pos ? substr(rest, 1, pos - 1) : rest
            desc = pos ? substr(rest, pos + RLENGTH) : ""
            print ".TP"
            print "\\fB" roff(term) "\\fR"
            if (desc != "")
                print roff(desc)
            def = 1
            pp = 0
        } else if (def && l ~ /^    +[^ ]/) {
            sub(/^ +/, "", l)
            print roff(l)
        } else {
            if (top && sect == "" && !described) {
                print ".SH DESCRIPTION"
                described = 1
            } else if (pp || def) {
                print ".PP"
            }
            sub(/^ +/, "", l)
            print roff(l)
            pp = def = 0
        }
    }
    if (syn)
        print ".fi"
    if (ex) {
        print ".fi"
        print ".RE"
    }
    if (top && !done)
        render_commands()
}
