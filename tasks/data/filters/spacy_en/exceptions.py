"""spaCy 3.8's English tokenizer exceptions ("special cases"): chunks with a fixed split."""

from __future__ import annotations

# spaCy's English tokenizer exceptions (spacy/lang/en/tokenizer_exceptions.py and the shared
# base list), as (pieces after the base, also with a capitalised base?, bases).
_SPLIT_EXCEPTIONS: tuple[tuple[tuple[str, ...], bool, str], ...] = (
    (("n't",), True, "ai are ca could dare did do does had has have is may might must need ought sha should was were wo would"),
    (("nt",), True, "ai are ca could dare did do does had has have is may might must need ought sha should was were wo would"),
    (("n’t",), True, "ai are ca could dare did do does had has have is may might must need ought sha should was were wo would"),
    (("'ve",), True, "could how i might must not should there these they those we what when where who why would you"),
    (("ve",), True, "could how i might must not should there these they those we what when where who why would you"),
    (("’ve",), True, "could how i might must not should there these they those we what when where who why would you"),
    (("'d",), True, "he how i it she that there these they this those we what when where who why you"),
    (("'d", "'ve"), True, "he how i it she that there these they this those we what when where who why you"),
    (("'ll",), True, "he how i it she that there these they this those we what when where who why you"),
    (("'ll", "'ve"), True, "he how i it she that there these they this those we what when where who why you"),
    (("d", "ve"), True, "he how i it she that there these they this those we what when where who why you"),
    (("ll", "ve"), True, "he how i it she that there these they this those we what when where who why you"),
    (("’d",), True, "he how i it she that there these they this those we what when where who why you"),
    (("’d", "’ve"), True, "he how i it she that there these they this those we what when where who why you"),
    (("’ll",), True, "he how i it she that there these they this those we what when where who why you"),
    (("’ll", "’ve"), True, "he how i it she that there these they this those we what when where who why you"),
    (("d",), True, "he how i it that there these they this those we what when where who why you"),
    (("n't", "'ve"), True, "ca could did do does had may might must need ought sha should wo would"),
    (("nt", "ve"), True, "ca could did do does had may might must need ought sha should wo would"),
    (("n’t", "’ve"), True, "ca could did do does had may might must need ought sha should wo would"),
    (("ll",), True, "how it that there these they this those what when where who why you"),
    (("'s",), True, "he how it let she that there this what when where who why"),
    (("’s",), True, "he how it let she that there this what when where who why"),
    (("'re",), True, "how there these they those we what when where who why you"),
    (("’re",), True, "how there these they those we what when where who why you"),
    (("s",), True, "he how she that there this what when where who why"),
    (("re",), True, "how there these they those what when where why you"),
    (("a.m.",), False, "1 2 3 4 5 6 7 8 9 10 11 12"),
    (("am",), False, "1 2 3 4 5 6 7 8 9 10 11 12"),
    (("p.m.",), False, "1 2 3 4 5 6 7 8 9 10 11 12"),
    (("pm",), False, "1 2 3 4 5 6 7 8 9 10 11 12"),
    (("on",), True, "c'm c’m"),
    (("all",), False, "y y' y’"),
    (("'d", "'y"), True, "how"),
    (("’d", "’y"), True, "how"),
    (("'m",), True, "i"),
    (("'m", "a"), True, "i"),
    (("m",), True, "i"),
    (("m", "a"), True, "i"),
    (("’m",), True, "i"),
    (("’m", "a"), True, "i"),
    (("na",), True, "gon"),
    (("not",), True, "can"),
    (("ta",), True, "got"),
    (("C", "."), False, "°"),
    (("F", "."), False, "°"),
    (("K", "."), False, "°"),
    (("c", "."), False, "°"),
    (("f", "."), False, "°"),
    (("k", "."), False, "°"),
)
# Exceptions that stay one token (abbreviations, emoticons, clitics on their own, ...).
_WHOLE_EXCEPTIONS = (
    "' '' 'Cause 'Cos 'Coz 'Cuz 'S 'bout 'cause 'cos 'coz 'cuz 'd 'em 'll 'nuff 're 's (*_*) (-8 (-: "
    "(-; (-_-) (._.) (: (; (= (>_<) (^_^) (o: (¬_¬) (ಠ_ಠ) (╯°□°）╯︵┻━┻ )-: ): -_- -__- ._. 0.0 0.o "
    "0_0 0_o 8) 8-) 8-D 8D :'( :') :'-( :'-) :( :(( :((( :() :) :)) :))) :* :-( :-(( :-((( :-) :-)) "
    ":-))) :-* :-/ :-0 :-3 :-> :-D :-O :-P :-X :-] :-o :-p :-x :-| :-} :/ :0 :1 :3 :> :D :O :P :X :] "
    ":o :o) :p :x :| :} :’( :’) :’-( :’-) ;) ;-) ;-D ;D ;_; <.< </3 <3 <33 <333 <space> =( =) =/ =3 "
    "=D =[ =] =| >.< >.> >:( >:o ><(((*> @_@ Adm. Ak. Ala. Apr. Ariz. Ark. Aug. Bros. C++ Calif. Co. "
    "Colo. Conn. Corp. D.C. Dec. Del. Doin Doin' Doin’ Dr. E.G. E.g. Feb. Fla. Ga. Gen. Goin Goin' "
    "Goin’ Gov. Havin Havin' Havin’ I.E. I.e. Ia. Id. Ill. Inc. Ind. Jan. Jr. Jul. Jun. Kan. Kans. Ky. "
    "La. Lovin Lovin' Lovin’ Ltd. Ma'am Mar. Mass. Ma’am Md. Messrs. Mich. Minn. Miss. Mo. Mont. Mr. "
    "Mrs. Ms. Mt. N.C. N.D. N.H. N.J. N.M. N.Y. Neb. Nebr. Nev. Nothin Nothin' Nothin’ Nov. Nuthin "
    "Nuthin' Nuthin’ O'clock O.O O.o O_O O_o Oct. Okla. Ol Ol' Ol’ Ore. O’clock Pa. Ph.D. Prof. Rep. "
    "Rev. S.C. Sen. Sep. Sept. Somethin Somethin' Somethin’ St. Tenn. V.V V_V Va. Wash. Wis. XD XDD "
    "[-: [: [= \\\") \\n \\t ]= ^_^ ^__^ ^___^ a. a.m. and/or b. c. co. d. doin doin' doin’ e. e.g. em "
    "f. g. goin goin' goin’ h. havin havin' havin’ i. i.e. j. k. l. ll lovin lovin' lovin’ m. ma'am "
    "ma’am n. nothin nothin' nothin’ nuff nuthin nuthin' nuthin’ o'clock o. o.0 o.O o.o o_0 o_O o_o "
    "ol ol' ol’ o’clock p. p.m. q. r. s. somethin somethin' somethin’ t. u. v. v.s. v.v v_v vs. w. "
    "w/o x. xD xDD y. z. ¯\\(ツ)/¯ ä. ö. ü. ಠ_ಠ ಠ︵ಠ — ‘S ‘s ’ ’Cause ’Cos ’Coz ’Cuz ’S ’bout ’cause "
    "’cos ’coz ’cuz ’d ’em ’ll ’nuff ’re ’s ’’"
)


def _build_specials() -> dict[str, tuple[str, ...]]:
    specials: dict[str, tuple[str, ...]] = {word: (word,) for word in _WHOLE_EXCEPTIONS.split()}
    for tail, capitalised, bases in _SPLIT_EXCEPTIONS:
        for base in bases.split():
            variants = [base, base[:1].upper() + base[1:]] if capitalised else [base]
            for variant in variants:
                specials[variant + "".join(tail)] = (variant, *tail)
    return specials


SPECIAL_CASES: dict[str, tuple[str, ...]] = _build_specials()
