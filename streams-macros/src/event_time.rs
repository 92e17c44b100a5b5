//! `#[derive(EventTime)]`: an `EventTime` impl reading the field marked `#[event_time]`.

use std::collections::HashSet;

use proc_macro2::{Ident, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Error, Field, Index, Member, Meta, Result, Type, parse_quote};

/// The field marked `#[event_time]`.
struct Marked<'a> {
    member: Member,
    ty: &'a Type,
}

/// Expands `#[derive(EventTime)]` on `input`.
pub(crate) fn expand(input: &DeriveInput) -> Result<TokenStream> {
    let fields = match &input.data {
        Data::Struct(data) => &data.fields,
        Data::Enum(data) => {
            return Err(Error::new_spanned(
                data.enum_token,
                "derive(EventTime) works on structs only",
            ));
        }
        Data::Union(data) => {
            return Err(Error::new_spanned(
                data.union_token,
                "derive(EventTime) works on structs only",
            ));
        }
    };

    let mut marked: Option<Marked<'_>> = None;
    for (index, field) in fields.iter().enumerate() {
        for attr in field
            .attrs
            .iter()
            .filter(|attr| attr.path().is_ident("event_time"))
        {
            if !matches!(attr.meta, Meta::Path(_)) {
                return Err(Error::new_spanned(
                    attr,
                    "#[event_time] takes no arguments; write it alone: #[event_time]",
                ));
            }
            if let Some(first) = &marked {
                return Err(Error::new_spanned(
                    attr,
                    format!(
                        "only one field can be marked #[event_time]; {} is already marked",
                        describe(&first.member)
                    ),
                ));
            }
            marked = Some(Marked {
                member: member(field, index),
                ty: &field.ty,
            });
        }
    }
    let Some(Marked { member, ty }) = marked else {
        return Err(Error::new_spanned(
            &input.ident,
            "derive(EventTime) needs one field marked #[event_time]",
        ));
    };

    // A field whose type uses a type parameter is only an event time when that type converts.
    let mut generics = input.generics.clone();
    let params: HashSet<&Ident> = input.generics.type_params().map(|p| &p.ident).collect();
    if mentions_any(ty.to_token_stream(), &params) {
        generics
            .make_where_clause()
            .predicates
            .push(parse_quote!(#ty: ::streams_core::time::IntoEpochMillis));
    }
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();

    let name = &input.ident;
    // Spanned at the field's type so that an unsupported type is reported there.
    let millis = quote_spanned! {ty.span()=>
        ::streams_core::time::IntoEpochMillis::epoch_millis(&self.#member)
    };
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics ::streams_core::time::EventTime for #name #ty_generics
        #where_clause
        {
            fn event_time(&self) -> i64 {
                #millis
            }
        }
    })
}

/// How `self.<member>` names `field`, the `index`th field. The member is spanned at the field's
/// type, like the rest of the accessor, so that errors underline the type alone.
fn member(field: &Field, index: usize) -> Member {
    match &field.ident {
        Some(ident) => {
            let mut ident = ident.clone();
            ident.set_span(field.ty.span());
            Member::Named(ident)
        }
        None => Member::Unnamed(Index {
            index: u32::try_from(index).unwrap_or(u32::MAX),
            span: field.ty.span(),
        }),
    }
}

/// The member as error messages name it: "`at`" or "field 0".
fn describe(member: &Member) -> String {
    match member {
        Member::Named(ident) => format!("`{ident}`"),
        Member::Unnamed(index) => format!("field {}", index.index),
    }
}

/// Whether `tokens` contain one of the identifiers in `params`.
fn mentions_any(tokens: TokenStream, params: &HashSet<&Ident>) -> bool {
    !params.is_empty()
        && tokens.into_iter().any(|tree| match tree {
            TokenTree::Ident(ident) => params.contains(&ident),
            TokenTree::Group(group) => mentions_any(group.stream(), params),
            TokenTree::Punct(_) | TokenTree::Literal(_) => false,
        })
}
